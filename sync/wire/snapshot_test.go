package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/wire"
)

func randString(r *rand.Rand) string {
	switch r.IntN(5) {
	case 0:
		return ""
	case 1:
		return "会员 \"quoted\" \\ \n\t\x00"
	case 2:
		return strings.Repeat("x", r.IntN(300))
	}
	return fmt.Sprintf("s%d", r.Int64())
}

func randStrings(r *rand.Rand) []string {
	n := r.IntN(4)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = randString(r)
	}
	return ss
}

func randInt(r *rand.Rand) int64 {
	switch r.IntN(4) {
	case 0:
		return math.MinInt64
	case 1:
		return math.MaxInt64
	case 2:
		return 0
	}
	return r.Int64N(2_000_000) - 1_000_000
}

func randState(r *rand.Rand) wire.MemberState {
	m := wire.MemberState{
		Member: entry.Member{ID: randString(r), Name: randString(r), Mobile: randString(r), Birthday: randString(r),
			Tier: randString(r), ReferrerID: randString(r), CardTokens: randStrings(r), EnrolledAt: randString(r)},
		Points: randInt(r), StoredValue: randInt(r), Flagged: r.IntN(2) == 0, LastSale: randString(r),
	}
	for range r.IntN(3) {
		m.Coupons = append(m.Coupons, entry.MemberCoupon{ID: randString(r), MemberID: randString(r), Name: randString(r),
			Threshold: randInt(r), Value: randInt(r), SKUs: randStrings(r), ValidFrom: randString(r), ValidUntil: randString(r)})
	}
	return m
}

// Every state reads back from the binary stream exactly as from the JSON
// one, so a till gets the same members whichever HQ answers.
func TestSnapshotBinaryRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var want []wire.MemberState
	b := []byte(wire.SnapshotMagic)
	for range 2000 {
		m := randState(r)
		j, err := json.Marshal(m)
		require.NoError(t, err)
		var viaJSON wire.MemberState
		require.NoError(t, json.Unmarshal(j, &viaJSON))
		want = append(want, viaJSON)
		b, err = wire.AppendSnapshotMember(b, &m)
		require.NoError(t, err)
	}
	b, err := wire.AppendSnapshotEnd(b, wire.SnapshotEnd{Members: 2000, Cursor: "eyJtIjp7In"})
	require.NoError(t, err)

	rd := wire.NewSnapshotReader(bytes.NewReader(b))
	for i := range want {
		var m wire.MemberState
		end, err := rd.Next(&m)
		require.NoError(t, err)
		require.Nil(t, end)
		require.Equal(t, want[i], m, "member %d", i)
	}
	end, err := rd.Next(new(wire.MemberState))
	require.NoError(t, err)
	require.Equal(t, &wire.SnapshotEnd{Members: 2000, Cursor: "eyJtIjp7In"}, end)

	// Cut anywhere before the end record's last byte: never a clean end.
	for cut := 0; cut < len(b); cut += 1 + cut/50 {
		rd := wire.NewSnapshotReader(bytes.NewReader(b[:cut]))
		for {
			end, err := rd.Next(new(wire.MemberState))
			require.Nil(t, end, "cut at %d of %d read as whole", cut, len(b))
			if err != nil {
				require.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut at %d", cut)
				break
			}
		}
	}
}

func TestSnapshotBinaryRefusesGarbage(t *testing.T) {
	for name, b := range map[string][]byte{
		"json":         []byte(`{"m":{"member":{"id":"M1"}}}` + "\n"),
		"unknown tag":  append([]byte(wire.SnapshotMagic), 'x', 0, 0, 0, 0),
		"huge record":  append([]byte(wire.SnapshotMagic), 'm', 0xff, 0xff, 0xff, 0xff),
		"left over":    append([]byte(wire.SnapshotMagic), 'e', 0, 0, 0, 3, 0, 0, 0),
		"short string": append([]byte(wire.SnapshotMagic), 'e', 0, 0, 0, 2, 0, 5),
		"huge list":    append([]byte(wire.SnapshotMagic), 'm', 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0xff),
	} {
		_, err := wire.NewSnapshotReader(bytes.NewReader(b)).Next(new(wire.MemberState))
		require.ErrorIs(t, err, wire.ErrSnapshotFormat, name)
	}
}

func FuzzSnapshotReader(f *testing.F) {
	m := randState(rand.New(rand.NewPCG(3, 4)))
	b, _ := wire.AppendSnapshotMember([]byte(wire.SnapshotMagic), &m)
	b, _ = wire.AppendSnapshotEnd(b, wire.SnapshotEnd{Members: 1, Cursor: "c"})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		rd := wire.NewSnapshotReader(bytes.NewReader(b))
		for range 1000 {
			var m wire.MemberState
			end, err := rd.Next(&m)
			if err != nil {
				if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, wire.ErrSnapshotFormat) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if end != nil {
				return
			}
			// What was read encodes back to a record that reads the same.
			enc, err := wire.AppendSnapshotMember([]byte(wire.SnapshotMagic), &m)
			require.NoError(t, err)
			var again wire.MemberState
			_, err = wire.NewSnapshotReader(bytes.NewReader(enc)).Next(&again)
			require.NoError(t, err)
			require.Equal(t, m, again)
		}
	})
}

// The binary codec writes each field by hand: a field added to a member
// state must be added to it (under a new media type), or tills on the
// binary stream would silently lose it.
func TestSnapshotBinaryCoversEveryField(t *testing.T) {
	shape := func(v any) string {
		var fs []string
		ty := reflect.TypeOf(v)
		for i := range ty.NumField() {
			fs = append(fs, ty.Field(i).Name+" "+ty.Field(i).Type.String())
		}
		return strings.Join(fs, ", ")
	}
	require.Equal(t, "Member entry.Member, Points int64, StoredValue int64, Coupons []entry.MemberCoupon, Flagged bool, LastSale string",
		shape(wire.MemberState{}), "wire.MemberState changed: update sync/wire/snapshot.go")
	require.Equal(t, "ID string, Name string, Mobile string, Birthday string, Tier string, ReferrerID string, CardTokens []string, EnrolledAt string",
		shape(entry.Member{}), "entry.Member changed: update sync/wire/snapshot.go")
	require.Equal(t, "ID string, MemberID string, Name string, Threshold int64, Value int64, SKUs []string, ValidFrom string, ValidUntil string",
		shape(entry.MemberCoupon{}), "entry.MemberCoupon changed: update sync/wire/snapshot.go")
}
