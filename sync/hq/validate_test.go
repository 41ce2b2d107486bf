package hq_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/wire"
)

// postBatch uploads b as plain JSON without an idempotency key (a header
// cannot carry every id a hostile body can).
func (e *env) postBatch(token string, b wire.Batch) (int, []byte) {
	e.t.Helper()
	body, err := json.Marshal(b)
	require.NoError(e.t, err)
	code, out, _ := e.do("POST", wire.PathBatches, token, body, nil)
	return code, out
}

func TestUploadRefusesIDsOutsideTheTillsRule(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	tok := e.store["S1"]
	for _, c := range []struct {
		name, field string
		edit        func(b *wire.Batch)
	}{
		{"till with NUL", "till", func(b *wire.Batch) { setTill(b, "T1\x00S2") }},
		{"till with U+202E", "till", func(b *wire.Batch) { setTill(b, "T\u202e1") }},
		{"till too long", "till", func(b *wire.Batch) { setTill(b, strings.Repeat("T", entry.MaxIDLen+1)) }},
		{"cashier with NUL", "entries[1].cashier", func(b *wire.Batch) { b.Entries[1].Cashier = "c\x001" }},
		{"cashier with U+202E", "entries[0].cashier", func(b *wire.Batch) { b.Entries[0].Cashier = "c\u202e1" }},
		{"receipt id with U+202E", "entries[1].sale.receipt_id", func(b *wire.Batch) {
			b.Entries[1].Sale.ReceiptID = "R\u202e1"
			b.Entries[1].Key = "R1"
		}},
		{"key with a slash", "entries[2].key", func(b *wire.Batch) { b.Entries[2].Key = "TU/1" }},
		{"receipt id and a bad amount", "entries[1].sale.receipt_id", func(b *wire.Batch) {
			b.Entries[1].Sale.ReceiptID, b.Entries[1].Sale.Due = "R 1", -1
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tl := &hqtest.Till{Store: "S1", Till: "T1"}
			b := batchOf(tl.Enrol("M1", hqtest.T0), tl.Sale("M1", hqtest.T0, 1000, 10, 0, 0, ""), tl.TopUp("M1", hqtest.T0, 500, 0))
			c.edit(&b)
			code, body := e.postBatch(tok, b)
			require.Equal(t, http.StatusBadRequest, code, string(body))
			var werr wire.Error
			require.NoError(t, json.Unmarshal(body, &werr))
			require.Equal(t, "bad_id", werr.Code)
			require.Equal(t, c.field, werr.Field)
			require.True(t, strings.HasPrefix(werr.Message, c.field) || strings.Contains(werr.Message, c.field+" id"), werr.Message)
			acked, err := e.st.TillAcked(context.Background(), "S1", "T1")
			require.NoError(t, err)
			require.Zero(t, acked, "nothing of the batch is kept")
		})
	}
	// The idempotency key's till follows the rule as well: a bad one is
	// never looked up, the body is read and refused.
	tl := &hqtest.Till{Store: "S1", Till: "T\u202e1"}
	b := batchOf(tl.Enrol("M1", hqtest.T0))
	code, body, _ := e.do("POST", wire.PathBatches, tok, gz(t, b), map[string]string{"Content-Encoding": "gzip", wire.HeaderIdempotencyKey: "S1/T\u202e1/1-1"})
	require.Equal(t, http.StatusBadRequest, code, string(body))
	ds, err := e.st.DeadLetters(context.Background(), true)
	require.NoError(t, err)
	require.Empty(t, ds, "a bad id is never kept, not even as a dead letter")
}

func setTill(b *wire.Batch, till string) {
	b.Till = till
	for i := range b.Entries {
		b.Entries[i].Till = till
	}
}

func TestStoreIDsFollowTheTillsRule(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	for _, id := range []string{"S\x001", "S\u202e1", "S 1", "S/1", ".S", strings.Repeat("S", entry.MaxIDLen+1), ""} {
		_, err := e.srv.IssueCredential(context.Background(), hq.RoleStore, id, "", "")
		require.Error(t, err, "%q", id)
		_, err = e.srv.IssueCredential(context.Background(), hq.RoleAdmin, id, "", "")
		require.Error(t, err, "%q", id)
		body, _ := json.Marshal(hq.StoreRequest{ID: id})
		code, out, _ := e.do("POST", "/admin/stores", adminToken, body, nil)
		require.Equal(t, http.StatusBadRequest, code, "%q: %s", id, out)
	}
	_, err := e.srv.IssueCredential(context.Background(), hq.RoleStore, "S001.east-2_b", "", "")
	require.NoError(t, err)
}

// TestOutOfRangeEntriesAreDeadLettered: entries with numbers no till
// writes are set aside and the till's later entries apply; a retry of
// them fails again and they stay dead.
func TestOutOfRangeEntriesAreDeadLettered(t *testing.T) {
	e := newEnv(t, hq.Options{}, nil)
	tok := e.store["S1"]
	tl := &hqtest.Till{Store: "S1", Till: "T1"}
	enrol := tl.Enrol("M1", hqtest.T0)
	huge := tl.Points("M1", hqtest.T0, math.MaxInt64-3, "correction") // beyond an entry's points: a bigint balance would overflow
	mismatch := tl.Points("M1", hqtest.T0, 5, "correction")
	mismatch.PointsDelta = math.MinInt64
	negative := tl.Sale("M1", hqtest.T0, -1000, 0, 0, 0, "")
	zeroQty := tl.Sale("M1", hqtest.T0, 1000, 10, 0, 0, "")
	zeroQty.Sale.Lines[0].Qty = 0
	bigTopUp := tl.TopUp("M1", hqtest.T0, entry.MaxAmount+1, 0)
	es := []entry.Entry{enrol, huge, mismatch, negative, zeroQty, bigTopUp, tl.Points("M1", hqtest.T0, 3, "correction")}
	code, ack, werr := e.upload(tok, batchOf(es...))
	require.Equal(t, http.StatusOK, code, werr.Message)
	require.EqualValues(t, 7, ack.Acked)
	var seqs []uint64
	for _, d := range ack.DeadLettered {
		seqs = append(seqs, d.Seq)
	}
	require.Equal(t, []uint64{2, 3, 4, 5, 6}, seqs)
	require.Contains(t, ack.DeadLettered[0].Reason, "points.points")
	require.Contains(t, ack.DeadLettered[1].Reason, "points_delta")
	require.Contains(t, ack.DeadLettered[2].Reason, "sale.")
	require.Contains(t, ack.DeadLettered[3].Reason, "sale.lines[0].qty")
	require.Contains(t, ack.DeadLettered[4].Reason, "topup.amount")
	m, err := e.st.Member(context.Background(), "M1")
	require.NoError(t, err)
	require.EqualValues(t, 3, m.Points)
	require.Zero(t, m.StoredValue)

	code, body, _ := e.do("POST", "/admin/deadletters/retry", adminToken, []byte(`{}`), nil)
	require.Equal(t, http.StatusOK, code)
	var res hq.RetryResult
	require.NoError(t, json.Unmarshal(body, &res))
	require.Empty(t, res.Applied)
	require.Len(t, res.Failed, 5)
	ds, err := e.st.DeadLetters(context.Background(), false)
	require.NoError(t, err)
	require.Len(t, ds, 5, "they stay dead")
	for _, d := range ds {
		require.False(t, bytes.ContainsRune([]byte(d.Reason), 0))
	}
}
