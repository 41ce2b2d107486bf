package pin

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestHashCheck(t *testing.T) {
	h, err := HashWith("482913", Params{Memory: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("encoding %q", h)
	}
	if err := Check(h, "482913"); err != nil {
		t.Fatalf("right PIN: %v", err)
	}
	if err := Check(h, "482914"); !errors.Is(err, ErrMismatch) {
		t.Fatalf("wrong PIN: %v", err)
	}
	h2, _ := HashWith("482913", Params{Memory: 64, Time: 1, Threads: 1})
	if h == h2 {
		t.Fatal("two hashes of one PIN are equal: the salt is not random")
	}
}

func TestFormatAndBadHashes(t *testing.T) {
	for _, p := range []string{"", "123", "12a4", "1234567890123", "１２３４"} {
		if _, err := Hash(p); err == nil {
			t.Errorf("PIN %q accepted", p)
		}
	}
	for _, h := range []string{"", "x", "$argon2i$v=19$m=64,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=9999999,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=64,t=1,p=1$!!$AAAAAAAAAAAAAAAAAAAAAA"} {
		if err := Check(h, "1234"); err == nil || errors.Is(err, ErrMismatch) {
			t.Errorf("hash %q: %v", h, err)
		}
	}
}

// TestCost prints what one check costs with Default parameters on this
// machine against the 50-100 ms the parameters were chosen for
// (POSAGENT_PIN_COST=1 go test -run Cost -v ./ledger/pin).
func TestCost(t *testing.T) {
	if os.Getenv("POSAGENT_PIN_COST") == "" {
		t.Skip("set POSAGENT_PIN_COST=1 to measure")
	}
	h, err := Hash("482913")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var ds []time.Duration
	for range n {
		start := time.Now()
		if err := Check(h, "482913"); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	var sum, worst time.Duration
	for _, d := range ds {
		sum += d
		worst = max(worst, d)
	}
	mean := sum / n
	t.Logf("argon2id m=%d KiB t=%d p=%d: mean %v, worst %v over %d checks (target 50-100 ms)", Default.Memory, Default.Time, Default.Threads, mean.Round(time.Millisecond), worst.Round(time.Millisecond), n)
	if mean < 30*time.Millisecond || mean > 200*time.Millisecond {
		t.Errorf("mean %v is far from the 50-100 ms target: adjust Default", mean)
	}
}
