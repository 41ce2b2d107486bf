package config

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDevicePaymentCodes(t *testing.T) {
	base := "store: S1\ntill: T1\ndata_dir: /tmp/x\ndevices:\n  - name: a\n    path: /dev/x\n    decoder: barcode\n"
	for _, v := range []string{"", "    payment_codes: pos\n", "    payment_codes: drop\n", "    payment_codes: DROP\n"} {
		c, err := Parse([]byte(base + v))
		require.NoError(t, err, v)
		require.Len(t, c.Devices, 1)
	}
	_, err := Parse([]byte(base + "    payment_codes: keep\n"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "devices[0].payment_codes (line 8)")
	require.Contains(t, err.Error(), "use pos")
}
