package ledger

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/loyalty"
)

// The store's zone decides local dates, not the zone the program was
// published with: 2026-03-17 16:30 UTC is the 18th (member day, ×2) in
// Shanghai but still the 17th in Berlin.
func TestStoreTimeZoneDecidesLocalDates(t *testing.T) {
	at := time.Date(2026, 3, 17, 16, 30, 0, 0, time.UTC)
	for _, c := range []struct {
		zone       string
		multiplier int64
		local      string
	}{
		{"", 2, "2026-03-18T00:30:00+08:00"}, // the program's own zone, Asia/Shanghai
		{"Asia/Shanghai", 2, "2026-03-18T00:30:00+08:00"},
		{"Europe/Berlin", 1, "2026-03-17T17:30:00+01:00"},
	} {
		t.Run("zone="+c.zone, func(t *testing.T) {
			l, err := Open(filepath.Join(t.TempDir(), "ledger.db"), Options{Store: "S1", Till: "T1", TimeZone: c.zone, Now: func() time.Time { return at }})
			require.NoError(t, err)
			defer l.Close()
			enrol(t, l, "M1")
			e := sale(t, l, SaleRequest{ReceiptID: "R1", MemberID: "M1", At: at, Lines: []loyalty.Line{line(1, 1, 10000)}})
			require.Equal(t, c.multiplier, e.Sale.Multiplier)
			require.Equal(t, c.local, e.Local)
		})
	}
	_, err := Open(filepath.Join(t.TempDir(), "ledger.db"), Options{Store: "S1", Till: "T1", TimeZone: "Mars/Olympus"})
	require.ErrorIs(t, err, ErrInvalid)
	require.Contains(t, err.Error(), "IANA")
}
