package hqcli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
)

// seedBurst writes five enrolments by one cashier within eight minutes,
// each member buying the next day.
func seedBurst(t *testing.T, db string) {
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	tl := &hqtest.Till{Store: "S1", Till: "T1", Cashier: "c9"}
	var es []entry.Entry
	for i := range 5 {
		at := hqtest.T0.Add(time.Duration(2*i) * time.Minute)
		id := fmt.Sprintf("B%d", i)
		e := tl.Enrol(id, at)
		e.Enrol.Member.Mobile = fmt.Sprintf("1%d80012%04d", 3+i, 1000*i+7)
		es = append(es, e)
		es = append(es, tl.Sale(id, at.Add(24*time.Hour), 1000, 10, 0, 0, ""))
	}
	_, err = st.Ingest(context.Background(), hqtest.Batch(es...))
	require.NoError(t, err)
}

func TestKPIFraud(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "hq.db")
	seedBurst(t, db)
	month := hqtest.T0.In(hqtest.Shanghai).Format("2006-01")

	out, _, err := run(t, "kpi", "--fraud", "--month", month, "--db", db)
	require.NoError(t, err)
	require.Contains(t, out, "5 of 5 enrolments flagged")
	require.Contains(t, out, "burst")
	require.Contains(t, out, "138****0007", "mobiles masked")

	out, _, err = run(t, "kpi", "--fraud", "--month", month, "--db", db, "--fraud-burst-count", "6")
	require.NoError(t, err)
	require.Contains(t, out, "no enrolment flagged")

	out, _, err = run(t, "kpi", "--fraud", "--month", month, "--db", db, "--format", "json", "--pii")
	require.NoError(t, err)
	var rep hq.FraudReport
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.False(t, rep.MaskedPII)
	require.Equal(t, "13800120007", rep.FlaggedList[0].Mobile)
	require.Equal(t, 5, rep.Cashiers[0].FirstPurchases)
	require.EqualValues(t, 5, rep.Cashiers[0].Sales)

	// HQ's own setting, and a request's flag over it.
	url, stop := serve(t, db, "--fraud-burst-minutes", "5")
	defer stop()
	out, _, err = run(t, "kpi", "--fraud", "--month", month, "--url", url, "--token", "boot")
	require.NoError(t, err)
	require.Contains(t, out, "0 of 5 enrolments flagged")
	out, _, err = run(t, "kpi", "--fraud", "--month", month, "--url", url, "--token", "boot", "--fraud-burst-minutes", "10", "--format", "html")
	require.NoError(t, err)
	require.Contains(t, out, "<td>burst</td>")
	_, _, err = run(t, "kpi", "--fraud", "--month", month, "--url", url, "--token", "boot", "--pii")
	require.ErrorContains(t, err, "pii right")
}
