package hqcli_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/sync/hq"
	"posagent/sync/hq/hqtest"
	"posagent/sync/hq/store/bolt"
)

// scanStore is an HQ file with M1 (birthday in 3 days, Shanghai time) and
// M2 (in 4 days), both enrolled two days ago and consenting.
func scanStore(t *testing.T) (db string, today time.Time) {
	t.Helper()
	db = filepath.Join(t.TempDir(), "hq.db")
	sh, err := time.LoadLocation("Asia/Shanghai")
	require.NoError(t, err)
	now := time.Now().In(sh)
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	ctx := context.Background()
	b := hq.Batch{Store: "S1", Till: "T1", First: 1, Last: 2, ReceivedAt: now}
	for i, id := range []string{"M1", "M2"} {
		require.NoError(t, st.SetConsent(ctx, id, true, now.Add(-72*time.Hour), "store:S1"))
		at := now.Add(-48 * time.Hour)
		e := &entry.Entry{Store: "S1", Till: "T1", Seq: uint64(i + 1), Kind: entry.KindEnrol, MemberID: id, At: at,
			Local: at.Format(time.RFC3339), Enrol: &entry.Enrol{Member: entry.Member{ID: id, Name: "张小三", Mobile: fmt.Sprintf("1380000000%d", i),
				Birthday: "1990-" + now.AddDate(0, 0, 3+i).Format("01-02"), Tier: "silver"}}}
		b.Items = append(b.Items, hq.Item{Seq: e.Seq, Entry: e})
	}
	_, err = st.Ingest(ctx, b)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	return db, now
}

func TestMessageScanByHand(t *testing.T) {
	db, now := scanStore(t)
	yesterday, today, tomorrow := now.AddDate(0, 0, -1).Format(time.DateOnly), now.Format(time.DateOnly), now.AddDate(0, 0, 1).Format(time.DateOnly)
	out, _, err := run(t, "messages", "scan", "--db", db, "--day", yesterday)
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(yesterday+`\s+yes\s+0\s+0\s+0`), out)
	// Without --day: every day since the last one run, here today.
	out, _, err = run(t, "messages", "scan", "--db", db)
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`(?m)^`+today+`\s+yes\s+1\s+0\s+0\s*$`), out)
	require.NotContains(t, out, yesterday)
	out, _, err = run(t, "messages", "scan", "--db", db, "--day", today)
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(today+`\s+already\s+0\s+0\s+0`), out)
	_, _, err = run(t, "messages", "scan", "--db", db, "--day", tomorrow)
	require.ErrorContains(t, err, "after today")
	_, _, err = run(t, "messages", "scan", "--db", db, "--day", "1/3/2027")
	require.ErrorContains(t, err, "YYYY-MM-DD")
	_, _, err = run(t, "messages", "scan", "--url", "http://127.0.0.1:1", "--token", "x")
	require.ErrorContains(t, err, "runs on the storage")

	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	require.NoError(t, err)
	defer st.Close()
	ms, err := st.Messages(context.Background(), hq.OutboxFilter{Limit: 100})
	require.NoError(t, err)
	y := now.AddDate(0, 0, 3).Year()
	require.Len(t, ms, 1)
	require.Equal(t, fmt.Sprintf("birthday/M1/%d", y), ms[0].ID)
	require.True(t, strings.HasPrefix(ms[0].Text, "张*三您好，3天后"), ms[0].Text)
	m1, err := st.Member(context.Background(), "M1")
	require.NoError(t, err)
	require.True(t, hq.HasCoupon(m1.Coupons, fmt.Sprintf("birthday-%d-M1", y)), "the birthday coupon goes with the message")
}

// hq serve runs the day's job by itself when it starts.
func TestServeRunsTheDayJob(t *testing.T) {
	db, now := scanStore(t)
	url, stop := serve(t, db)
	want := fmt.Sprintf("birthday/M1/%d", now.AddDate(0, 0, 3).Year())
	hqtest.Eventually(t, "the birthday message", func() bool {
		out, _, err := run(t, "messages", "list", "--url", url, "--token", "boot")
		return err == nil && strings.Contains(out, want)
	})
	stop()
	out, _, err := run(t, "messages", "scan", "--db", db, "--day", now.Format(time.DateOnly))
	require.NoError(t, err)
	require.Contains(t, out, "already")
}
