package hq

import (
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/sync/wire"
)

func TestAcceptsSnapshotBinary(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                                     false,
		"*/*":                                  false,
		"application/x-ndjson":                 false,
		wire.SnapshotBinary:                    true,
		"APPLICATION/VND.POSAGENT.SNAPSHOT.V1": true,
		wire.SnapshotBinary + ", application/x-ndjson;q=0.5":      true,
		"application/x-ndjson, " + wire.SnapshotBinary + ";q=0.9": true,
		wire.SnapshotBinary + ";q=0":                              false,
		wire.SnapshotBinary + "; q=0.000":                         false,
		"application/vnd.posagent.snapshot.v2":                    false,
		"garbage;;;, " + wire.SnapshotBinary:                      true,
	} {
		r := httptest.NewRequest("GET", wire.PathSnapshot, nil)
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		require.Equal(t, want, acceptsSnapshotBinary(r), "Accept: %q", accept)
	}
}
