// Package crashtest kills a process committing sales at random moments and
// checks that every sale it acknowledged survives exactly once and that the
// ledger verifies clean. Run more kills with -crash.kills=N.
package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"posagent/ledger"
	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

var kills = flag.Int("crash.kills", 200, "how many times to SIGKILL the committing child")

const (
	envPath = "POSAGENT_CRASHTEST_LEDGER"
	envRun  = "POSAGENT_CRASHTEST_RUN"
	tills   = 4
)

func opts() ledger.Options {
	return ledger.Options{Store: "S1", Till: "T1"}
}

func TestMain(m *testing.M) {
	if p := os.Getenv(envPath); p != "" {
		os.Exit(child(p, os.Getenv(envRun)))
	}
	os.Exit(m.Run())
}

// child commits sales on several tills until killed, printing one line per
// acknowledged sale: "ACK <till> <receipt> <seq>". A line is written only
// after CommitSale returned, i.e. after the fsync.
func child(path, run string) int {
	l, err := ledger.Open(path, opts())
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		return 2
	}
	ctx := context.Background()
	for i := 0; i < tills; i++ {
		_, err := l.Enrol(ctx, ledger.EnrolRequest{Key: fmt.Sprint("m", i), Member: entry.Member{ID: fmt.Sprint("M", i), Name: "crash"}})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child enrol:", err)
			return 2
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for t := 0; t < tills; t++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			till := fmt.Sprint("T", t)
			for i := 0; i < 400; i++ {
				receipt := fmt.Sprintf("%s-%d", run, i)
				r := ledger.SaleRequest{Till: till, ReceiptID: receipt, MemberID: fmt.Sprint("M", t),
					Lines: []loyalty.Line{{LineNo: 1, SKU: "A", Qty: 1, UnitPrice: 10000 + int64(i), Discountable: true, EarnsPoints: true}}}
				if i%4 == 3 {
					r.RedeemPoints = 100
				}
				e, err := l.CommitSale(ctx, r)
				if err != nil {
					// Not enough points yet is fine; anything else is a failure.
					if !strings.Contains(err.Error(), "insufficient points") {
						fmt.Fprintln(os.Stderr, "child commit:", err)
						os.Exit(3)
					}
					continue
				}
				mu.Lock()
				os.Stdout.WriteString(fmt.Sprintf("ACK %s %s %d\n", till, receipt, e.Seq))
				mu.Unlock()
				if i%5 == 4 { // a resend of the same sale changes nothing
					if again, err := l.CommitSale(ctx, r); err != nil || again.Seq != e.Seq {
						fmt.Fprintln(os.Stderr, "child resend:", err)
						os.Exit(3)
					}
				}
			}
		}()
	}
	wg.Wait()
	l.Close()
	return 0
}

type ack struct {
	till, receipt string
	seq           uint64
}

func TestCrashKeepsEveryAcknowledgedSale(t *testing.T) {
	n := *kills
	if testing.Short() {
		n = min(n, 20)
	}
	// The child mostly waits on fsync, so a few ledgers are hammered at
	// once; the kills add up to n.
	const workers = 4
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, workers)
	total := make([]int, workers)
	for w := 0; w < workers; w++ {
		share := n / workers
		if w < n%workers {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			total[w], errs[w] = worker(filepath.Join(dir, fmt.Sprint("w", w), "ledger.db"), share, uint64(w))
		}()
	}
	wg.Wait()
	sum := 0
	for w := range errs {
		if errs[w] != nil {
			t.Fatalf("ledger %d: %v", w, errs[w])
		}
		sum += total[w]
	}
	t.Logf("%d kills over %d ledgers, %d acknowledged sales all present exactly once", n, workers, sum)
}

func worker(path string, n int, seed uint64) (int, error) {
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), seed))
	acked := map[string]ack{}
	deadline := time.Now().Add(10 * time.Minute)
	for k := 0; k < n; k++ {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("gave up after %d kills: too slow", k)
		}
		got, err := runAndKill(path, k, rng)
		if err != nil {
			return 0, err
		}
		for _, a := range got {
			acked[a.till+"/"+a.receipt] = a
		}
		if k%10 == 9 || k == n-1 || len(got) == 0 {
			if err := check(path, acked, k); err != nil {
				return 0, err
			}
		}
	}
	return len(acked), nil
}

// runAndKill starts a child and SIGKILLs it after a random number of
// acknowledgements (sometimes before the first, possibly while it opens or
// creates the file), then returns what it acknowledged.
func runAndKill(path string, k int, rng *rand.Rand) ([]ack, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envPath+"="+path, fmt.Sprintf("%s=r%d", envRun, k))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	killAfter := rng.IntN(12) // acks before the kill; 0: kill at once
	jitter := time.Duration(rng.IntN(2000)) * time.Microsecond
	var acks []ack
	sc := bufio.NewScanner(out)
	var once sync.Once
	kill := func() { once.Do(func() { cmd.Process.Signal(syscall.SIGKILL) }) }
	if killAfter == 0 {
		time.AfterFunc(jitter, kill)
	}
	var bad string
	for sc.Scan() {
		var a ack
		if _, err := fmt.Sscanf(sc.Text(), "ACK %s %s %d", &a.till, &a.receipt, &a.seq); err != nil {
			bad = sc.Text()
			kill()
			continue
		}
		acks = append(acks, a)
		if len(acks) == killAfter {
			time.AfterFunc(jitter, kill)
		}
	}
	err = cmd.Wait()
	if bad != "" {
		return nil, fmt.Errorf("child printed %q", bad)
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() > 0 {
		return nil, fmt.Errorf("child failed (exit %d): %s", ee.ExitCode(), stderr.String())
	}
	return acks, nil
}

func check(path string, acked map[string]ack, k int) error {
	if _, err := os.Stat(path); os.IsNotExist(err) {
		if len(acked) > 0 {
			return fmt.Errorf("after kill %d: ledger file missing but %d sales were acknowledged", k, len(acked))
		}
		return nil
	}
	l, err := ledger.Open(path, opts())
	if err != nil {
		return fmt.Errorf("after kill %d: reopen: %v", k, err)
	}
	defer l.Close()
	seen := map[string]uint64{}
	count := map[string]int{}
	tillsList, err := l.Tills()
	if err != nil {
		return err
	}
	for _, till := range tillsList {
		es, err := l.Pending(till, 0, 1<<30)
		if err != nil {
			return err
		}
		for _, e := range es {
			if e.Kind == entry.KindSale {
				key := till + "/" + e.Key
				count[key]++
				seen[key] = e.Seq
			}
		}
	}
	for key, a := range acked {
		if count[key] != 1 {
			return fmt.Errorf("after kill %d: acknowledged sale %s found %d times", k, key, count[key])
		}
		if seen[key] != a.seq {
			return fmt.Errorf("after kill %d: sale %s acknowledged as seq %d, ledger has %d", k, key, a.seq, seen[key])
		}
	}
	var b bytes.Buffer
	ok, err := l.Verify(&b)
	if err != nil || !ok {
		return fmt.Errorf("after kill %d: verify: %v\n%s", k, err, b.String())
	}
	return nil
}
