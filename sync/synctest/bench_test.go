package synctest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"posagent/sync/client"
	"posagent/sync/faultproxy"
	"posagent/sync/hq"
	hqbolt "posagent/sync/hq/store/bolt"
)

// TestOfflineUploadBench measures how long a store that sold 50,000 times
// offline takes to upload everything once HQ is reachable again, against
// the real HQ server on loopback with its bolt store (fsync on). It prints
// figures (wall time, and CPU time of store and HQ together, which does
// not depend on how busy the box is) and asserts only exactness.
//
//	POSAGENT_SYNC_BENCH=1 go test -run OfflineUploadBench -v ./sync/synctest/
func TestOfflineUploadBench(t *testing.T) {
	if os.Getenv("POSAGENT_SYNC_BENCH") != "1" {
		t.Skip("set POSAGENT_SYNC_BENCH=1 to run the 50k offline upload benchmark")
	}
	const total = 50000
	for _, c := range []struct {
		tills, batch, parallel int
	}{{1, 500, 1}, {2, 500, 2}, {4, 500, 4}, {2, 1000, 2}} {
		t.Run(fmt.Sprintf("tills=%d/batch=%d", c.tills, c.batch), func(t *testing.T) {
			benchOnce(t, total, c.tills, c.batch, c.parallel)
		})
	}
}

func benchOnce(t *testing.T, total, tills, batch, parallel int) {
	dir := t.TempDir()
	st, err := hqbolt.Open(dir+"/hq.db", hqbolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.AddCredential(ctx, hq.Credential{Role: hq.RoleStore, ID: "S1", TokenHash: hq.HashToken("tok-S1"), CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: hq.NewServer(st, hq.Options{AdminToken: adminToken})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	// The link to HQ is down while the store sells.
	px, err := faultproxy.New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer px.Close()
	px.Set(faultproxy.Refuse())

	ob, err := OpenOutbox(dir+"/outbox.db", "S1")
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	start := time.Now()
	if err := fillOutbox(ob, tills, total/tills); err != nil {
		t.Fatal(err)
	}
	fillTime := time.Since(start)

	cfg := storeConfig(px.URL(), "tok-S1")
	cfg.BatchMax, cfg.Parallel, cfg.HTTPClient = batch, parallel, nil
	cl, err := client.New(cfg, ob, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.SyncNow(ctx); err == nil {
		t.Fatal("upload succeeded while HQ was unreachable")
	}
	if n, _, _ := ob.Backlog(); n != total {
		t.Fatalf("backlog %d, want %d", n, total)
	}

	// Reconnect: the link is back; the agent's SyncNow (or the next
	// backoff retry) uploads the backlog.
	px.Set(faultproxy.Pass())
	start, cpu0 := time.Now(), cpuTime()
	if err := cl.SyncNow(ctx); err != nil {
		t.Fatal(err)
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	s := cl.Status()
	if s.Backlog != 0 || s.Uploaded != int64(total) {
		t.Fatalf("after upload: %+v", s)
	}
	var n int
	if err := st.Scan(ctx, func(hq.Stored) error { n++; return nil }); err != nil || n != total {
		t.Fatalf("HQ holds %d entries (%v), want %d", n, err, total)
	}
	fmt.Printf("BENCH sync 50k offline: tills=%d batch=%d parallel=%d batches=%d upload=%v (%.0f entries/s) target<10s; cpu store+HQ %v; outbox fill %v\n",
		tills, batch, parallel, s.Batches, el.Round(time.Millisecond), float64(total)/el.Seconds(), cpu.Round(time.Millisecond), fillTime.Round(time.Millisecond))
}
