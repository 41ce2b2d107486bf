package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"posagent/ledger/entry"
)

// A chain's members at one till: POSAGENT_MEMBERS_BENCH=1 go test -run
// TestMembersAtChainScale -v ./ledger/ (POSAGENT_MEMBERS_N sets the count,
// default 1,000,000). It loads the members from HQ as a new till does
// (LoadMembers, in pages of membersPage as the sync client passes them) and
// reports the rate and the bytes per member as built (bucket stats), then
// applies incremental pages through ApplyMemberStates (changed members, and
// new ones) onto the full ledger. Then, in a fresh process on a cold page
// cache, it reports the time Open takes, RSS after Open and after 1k, 10k
// and 100k random lookups by card, and their latency.

const membersPage = 20000

func benchMemberState(i int) MemberState {
	// Realistic sizes: an enrolment id of the till that enrolled the
	// member, a two- or three-character name, a mobile, a birthday, one
	// card, a tenth of them holding a coupon.
	id := fmt.Sprintf("S%04d-T%d-%d", i%997, 1+i%3, i)
	h := sha256.Sum256([]byte("card-" + strconv.Itoa(i)))
	s := MemberState{
		Member: entry.Member{ID: id, Name: []string{"张伟", "王芳", "李秀英", "刘洋"}[i%4], Mobile: benchMobile(i),
			Birthday: fmt.Sprintf("%04d-%02d-%02d", 1950+i%50, 1+i%12, 1+i%28), Tier: []string{"silver", "gold", "platinum"}[i%3],
			CardTokens: []string{hex.EncodeToString(h[:])}, EnrolledAt: time.Unix(1.6e9+int64(i)*37, 0).UTC().Format(time.RFC3339)},
		Points: int64(i % 5000), StoredValue: int64(i%7) * 1000,
	}
	if i%10 == 0 {
		s.Coupons = []entry.MemberCoupon{{ID: "welcome-" + id, MemberID: id, Name: "Welcome", Threshold: 5000, Value: 500,
			ValidFrom: "2026-01-01T00:00:00Z", ValidUntil: "2027-12-31T00:00:00Z"}}
	}
	if i%2 == 0 {
		s.LastSale = time.Unix(1.75e9+int64(i), 0).UTC()
	}
	return s
}

func benchMobile(i int) string { return fmt.Sprintf("139%08d", i) }

func benchCard(i int) string {
	h := sha256.Sum256([]byte("card-" + strconv.Itoa(i)))
	return hex.EncodeToString(h[:])
}

// benchOrder is the order HQ sends the members in: none in particular.
func benchOrder(n int) []int {
	return rand.New(rand.NewPCG(3, 4)).Perm(n)
}

func TestMembersAtChainScale(t *testing.T) {
	if os.Getenv("POSAGENT_MEMBERS_BENCH") != "1" {
		t.Skip("set POSAGENT_MEMBERS_BENCH=1 to build a ledger with a chain's members (1M: about a minute)")
	}
	n := 1_000_000
	if v := os.Getenv("POSAGENT_MEMBERS_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("POSAGENT_MEMBERS_N=%q", v)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "members.db")
	l, err := Open(path, Options{Store: "S1", Till: "T1"})
	if err != nil {
		t.Fatal(err)
	}
	order := benchOrder(n)
	page := make([]MemberState, 0, membersPage)
	if os.Getenv("POSAGENT_MEMBERS_COMPARE") == "1" {
		// The same pages through ApplyMemberStates, into another ledger.
		ol, err := Open(filepath.Join(dir, "paged.db"), Options{Store: "S1", Till: "T1"})
		if err != nil {
			t.Fatal(err)
		}
		var took time.Duration
		cpu0 := cpuTime()
		for i := 0; i < n; i += membersPage {
			page = page[:0]
			for _, j := range order[i:min(n, i+membersPage)] {
				page = append(page, benchMemberState(j))
			}
			t0 := time.Now()
			if err := ol.ApplyMemberStates(page); err != nil {
				t.Fatal(err)
			}
			took += time.Since(t0)
		}
		cpu := cpuTime() - cpu0
		if err := ol.Close(); err != nil {
			t.Fatal(err)
		}
		st, _ := os.Stat(filepath.Join(dir, "paged.db"))
		t.Logf("for comparison, ApplyMemberStates in pages of %d: %v, %.0f members/s, CPU %v (%.1f µs/member); file %.0f bytes/member",
			membersPage, took.Round(time.Millisecond), float64(n)/took.Seconds(), cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(n), float64(st.Size())/float64(n))
	}
	// The CPU of making the pages alone, taken off the load's below.
	cpu0 := cpuTime()
	for i := 0; i < n; i += membersPage {
		page = page[:0]
		for _, j := range order[i:min(n, i+membersPage)] {
			page = append(page, benchMemberState(j))
		}
	}
	building := cpuTime() - cpu0
	start := time.Now()
	cpu0 = cpuTime()
	ld, err := l.LoadMembers()
	if err != nil {
		t.Fatal(err)
	}
	var built time.Duration
	for i := 0; i < n; i += membersPage {
		page = page[:0]
		t0 := time.Now()
		for _, j := range order[i:min(n, i+membersPage)] {
			page = append(page, benchMemberState(j))
		}
		built += time.Since(t0)
		if err := ld.Add(page); err != nil {
			t.Fatal(err)
		}
	}
	added := time.Since(start) - built
	if err := ld.Finish(); err != nil {
		t.Fatal(err)
	}
	loaded := time.Since(start) - built
	cpu := cpuTime() - cpu0 - building
	rate := float64(n) / loaded.Seconds()
	t.Logf("load %d members (LoadMembers, pages of %d, HQ's order): %v (Add %v, Finish %v), %.0f members/s, 1M in %.1f s (target >= 100,000/s); CPU %v (%.1f µs/member, %.0f members per CPU-second; making the pages: %v more); CPU pressure now: %s",
		n, membersPage, loaded.Round(time.Millisecond), added.Round(time.Millisecond), (loaded - added).Round(time.Millisecond), rate, 1e6/rate,
		cpu.Round(time.Millisecond), float64(cpu.Microseconds())/float64(n), float64(n)/cpu.Seconds(), building.Round(time.Millisecond), cpuPressure())
	runtime.GC()
	t.Logf("RSS of this process after the load: %d KB", rssKB())
	if st, err := os.Stat(path); err == nil {
		t.Logf("file after the load: %d bytes, %.0f bytes/member (target < 200)", st.Size(), float64(st.Size())/float64(n))
	}
	logDBStats(t, l.db, n)

	// Incremental pages onto the full ledger, as the feed brings them.
	r := rand.New(rand.NewPCG(5, 6))
	for _, what := range []string{"changed", "new"} {
		page = page[:0]
		for j := range membersPage {
			i := r.IntN(n)
			if what == "new" {
				i = n + j
			}
			s := benchMemberState(i)
			s.Points += 7
			page = append(page, s)
		}
		t0, c0 := time.Now(), cpuTime()
		if err := l.ApplyMemberStates(page); err != nil {
			t.Fatal(err)
		}
		d, c := time.Since(t0), cpuTime()-c0
		t.Logf("ApplyMemberStates, a page of %d %s members onto %d: %v, %.0f members/s; CPU %v (%.1f µs/member)",
			membersPage, what, n, d.Round(time.Millisecond), float64(membersPage)/d.Seconds(), c.Round(time.Millisecond), float64(c.Microseconds())/membersPage)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file after the incremental pages: %d bytes, %.0f bytes/member", st.Size(), float64(st.Size())/float64(n))
	logBucketStats(t, path, n)
	cpath := filepath.Join(dir, "compact.db")
	if err := Compact(path, cpath, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := os.Stat(cpath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after ledger compact: %d bytes, %.0f bytes/member", cs.Size(), float64(cs.Size())/float64(n))

	// Open, RSS and lookups in a fresh process on a cold cache, on the
	// file as the agent would have it after the pull (not the compact copy).
	// Run 0 looks members up on the cold cache; run 1 warms the member
	// pages in the background after the first lookup, as the agent does.
	for run := 0; run < 2; run++ {
		dropCache(t, path)
		dropCache(t, walPath(path))
		cmd := exec.Command(os.Args[0], "-test.run=^TestMembersChild$", "-test.v")
		cmd.Env = append(os.Environ(), "POSAGENT_MEMBERS_CHILD="+path, "POSAGENT_MEMBERS_N="+strconv.Itoa(n), "POSAGENT_MEMBERS_WARM="+strconv.Itoa(run))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		for _, ln := range strings.Split(string(out), "\n") {
			if strings.Contains(ln, "members_child:") {
				t.Log(strings.TrimSpace(ln[strings.Index(ln, "members_child:")+len("members_child:"):]))
			}
		}
	}
}

// TestMembersChild is the measuring half of TestMembersAtChainScale, run in
// its own process so RSS is the ledger's alone.
func TestMembersChild(t *testing.T) {
	path := os.Getenv("POSAGENT_MEMBERS_CHILD")
	if path == "" {
		t.Skip("run by TestMembersAtChainScale")
	}
	n, _ := strconv.Atoi(os.Getenv("POSAGENT_MEMBERS_N"))
	say := func(format string, a ...any) { fmt.Printf("members_child: "+format+"\n", a...) }
	rss0 := rssKB()
	start := time.Now()
	l, err := Open(path, Options{Store: "S1", Till: "T1"})
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Since(start)
	// What the agent does before /readyz answers (the backlog), and a
	// first lookup.
	if _, _, err := l.Backlog(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.MemberByToken(benchCard(n / 2)); err != nil {
		t.Fatal(err)
	}
	ready := time.Since(start)
	runtime.GC()
	say("open %v, open + backlog + first lookup %v (target: ready < 1 s); RSS before open %d KB, after open %d KB",
		opened.Round(time.Microsecond), ready.Round(time.Microsecond), rss0, rssKB())
	// With POSAGENT_MEMBERS_WARM=1 the member pages are read into the
	// cache in the background from here on (the agent starts it once it
	// answers); lookups go on meanwhile and are split into those that
	// started before it ended and those after.
	warmed := make(chan WarmStats, 1)
	var warmEnd atomic.Int64
	warm := os.Getenv("POSAGENT_MEMBERS_WARM") == "1"
	if warm {
		go func() {
			c0 := cpuTime()
			st, err := l.WarmMembers(context.Background())
			warmEnd.Store(time.Now().UnixNano())
			if err != nil {
				t.Error(err)
			}
			say("warm: %d pages of the member buckets, %d MB in %d reads, %v (process CPU meanwhile %v); RSS now %d KB",
				st.Pages, st.Bytes>>20, st.Reads, st.Took.Round(time.Millisecond), (cpuTime() - c0).Round(time.Millisecond), rssKB())
			warmed <- st
		}()
	}
	var during, after []time.Duration
	// The floor: a 4 KiB read of a random page of the file past the page
	// cache (O_DIRECT), taken between lookups: what one cold page costs
	// here now, the machine's load included (a cold lookup reads one to
	// four pages).
	raw, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	st, err := raw.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pages := int(st.Size() / 4096)
	abuf := make([]byte, 2*4096)
	blk := abuf[4096-int(uintptr(unsafe.Pointer(&abuf[0]))%4096):][:4096]
	r := rand.New(rand.NewPCG(1, 2))
	var all, floor []time.Duration
	done := 0
	for _, upTo := range []int{1000, 10_000, 100_000} {
		d := make([]time.Duration, 0, upTo-done)
		for ; done < upTo; done++ {
			i := r.IntN(n)
			t0 := time.Now()
			if _, err := raw.ReadAt(blk, int64(r.IntN(pages))*4096); err != nil {
				t.Fatal(err)
			}
			floor = append(floor, time.Since(t0))
			card := benchCard(i)
			t0 = time.Now()
			v, err := l.MemberByToken(card)
			took := time.Since(t0)
			d = append(d, took)
			if warm {
				if e := warmEnd.Load(); e == 0 || t0.UnixNano() < e {
					during = append(during, took)
				} else {
					after = append(after, took)
				}
			}
			if err != nil || v.Member.ID != benchMemberState(i).Member.ID {
				t.Fatalf("lookup of member %d: %v %q", i, err, v.Member.ID)
			}
		}
		all = append(all, d...)
		runtime.GC()
		say("after %6d random lookups by card: RSS %6d KB (target < 100 MB; file pages %d KB, anonymous %d KB); these: p50 %v p99 %v max %v; all so far: p99 %v (target < 1 ms); raw cold 4 KiB read p50 %v p99 %v; CPU pressure %s",
			upTo, rssKB(), statusKB("RssFile:"), statusKB("RssAnon:"), pct(d, 0.5), pct(d, 0.99), pct(d, 1), pct(all, 0.99), pct(append([]time.Duration(nil), floor...), 0.5), pct(append([]time.Duration(nil), floor...), 0.99), cpuPressure())
	}
	if warm {
		<-warmed
		say("lookups while warming: %d, p50 %v p99 %v; after: %d, p50 %v p99 %v (target < 1 ms); raw cold 4 KiB read p50 %v p99 %v",
			len(during), pct(during, 0.5), pct(during, 0.99), len(after), pct(after, 0.5), pct(after, 0.99), pct(floor, 0.5), pct(floor, 0.99))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// cpuTime is the CPU time the process used so far (user and system): on a
// shared machine the wall time of a run says more about the neighbours.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPressure is the kernel's share of time some task waited for a CPU
// (last 10 and 60 s), to tell a busy machine from a slow ledger.
func cpuPressure() string {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	if len(f) < 3 {
		return "unknown"
	}
	return f[1] + " " + f[2]
}

func rssKB() int { return statusKB("VmRSS:") }

// statusKB is a figure of /proc/self/status in KB (RssFile: pages of
// mapped files, the ledger's among them; RssAnon: the heap and stacks).
func statusKB(field string) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, ln := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(ln, field) {
			v, _ := strconv.Atoi(strings.Fields(ln)[1])
			return v
		}
	}
	return -1
}

// dropCache evicts the file's pages from the page cache, so the next open
// reads from the disk as after a reboot.
func dropCache(t *testing.T, path string) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Logf("fadvise: %v", err)
	}
}

func logBucketStats(t *testing.T, path string, n int) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	logDBStats(t, db, n)
}

func logDBStats(t *testing.T, db *bolt.DB, n int) {
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			s := b.Stats()
			alloc := s.BranchAlloc + s.LeafAlloc
			if s.KeyN == 0 {
				return nil
			}
			t.Logf("  bucket %-9s keys %8d  in use %11d  allocated %11d  = %.0f bytes/member (%.0f%% full)",
				name, s.KeyN, s.LeafInuse+s.BranchInuse, alloc, float64(alloc)/float64(n), 100*float64(s.LeafInuse+s.BranchInuse)/float64(max(alloc, 1)))
			return nil
		})
	})
	db.View(func(tx *bolt.Tx) error {
		t.Logf("  data %d bytes (pages in use or free, up to the highest page written)", tx.Size())
		return nil
	})
}
