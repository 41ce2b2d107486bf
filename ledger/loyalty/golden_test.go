package loyalty

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"
)

// The golden file pins what quotes say, byte for byte: the JSON a till's API
// returns and the ledger keeps, and the reason text Go callers read. Its
// header is a SHA-256 over goldenCases generated baskets; its body holds the
// full output of a subset that includes every kind of reason, so a change
// shows as a readable diff. Regenerate only when a reason is meant to change:
// go test -run TestQuoteGolden -update-golden ./ledger/loyalty/
var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/quotes.golden from the current engine")

const (
	goldenFile  = "testdata/quotes.golden"
	goldenCases = 20000
	goldenFull  = 60 // the first this many cases are kept in full, besides those that show a new kind of reason
)

// reasonKinds are a piece of every kind of reason a quote writes (and the
// number forms they use); the cases kept in full must show each.
var reasonKinds = []string{
	// the quote's
	", tier discount ¥", "member ", " off discountable lines), program v", "non-member: no tier discount, no points, no redemption (program v",
	") takes ¥", " (capped at the covered net)", ") not applied: the lines it covers come to ¥0.00",
	"\"redeem ", " points per yuan\"", " points per yuan (asked ", "; capped at ", "due ¥", " = net ¥", "points 0 = floor(earn base ",
	"no multiplier applies on ", "multiplier birthday (", "multiplier birthday month (", "multiplier member day (day ", "multiplier off-season ",
	" (applying: ", "; the highest applies, no stacking)", "\" unreadable (want MM-DD or YYYY-MM-DD), birthday multipliers skipped",
	".50%", "12%",
	// the lines'
	" = 1 × ¥", "no tier discount: non-member", "no tier discount: line not discountable (special price)", " has none",
	"\"tier discount ¥", ", rounded half up at the fen", "\"coupon share ¥", " by net, largest remainder", ": line not covered",
	"\"points share ¥", " points) of ¥", " by amount due after coupon, largest remainder",
	"earns no points: non-member", "earns no points: line marked not earning", "\"earn base ¥", " points by earn base share, largest remainder",
	// JSON escaping of what callers name
	`\u003c`, `\u0026`, `\u2028`, `\ufffd`,
	// errors
	"error: ",
}

// goldenPrograms are the default program, the second version, the default
// in another zone and one with odd rates, ties and a zero discount.
func goldenPrograms(t *testing.T) []*Program {
	src, err := os.ReadFile("../../testdata/programs/v2-2026h2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v2, err := ParseProgram(src)
	if err != nil {
		t.Fatal(err)
	}
	ny, err := DefaultProgram().InZone("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	odd := DefaultProgram()
	odd.Tiers[0].DiscountBP = 0
	odd.Tiers[1].DiscountBP = 1250
	odd.Tiers[2].DiscountBP = 1
	odd.FenPerPoint = 7
	odd.Multipliers.Birthday.Factor = 3
	odd.Multipliers.BirthdayMonth = Multiplier{Factor: 3}
	odd.Multipliers.MemberDay = Multiplier{Factor: 5, DayOfMonth: 1, Tiers: []string{"diamond"}}
	odd.Multipliers.OffSeason = Multiplier{Factor: 1, Weekday: time.Friday, Months: []time.Month{1, 6, 12}}
	odd.Redemption = Redemption{PointsPerYuan: 30, Step: 7, MaxShareBP: 3333}
	return []*Program{DefaultProgram(), v2, ny, odd}
}

// goldenBasket draws a basket, a member (or none) and a sale time: mostly
// good sales of few lines, with names that need JSON escaping, coupons that
// do and do not apply, redemptions in and out of step, and some bad input.
func goldenBasket(rng *rand.Rand) (Basket, *Member, time.Time) {
	pick := func(s ...string) string { return s[rng.Intn(len(s))] }
	skus := []string{"A", "B", "C", "<b>&", "奶茶"}
	n := 1 + rng.Intn(4)
	if rng.Intn(10) == 0 {
		n = 1 + rng.Intn(60)
	}
	var b Basket
	for i := 0; i < n; i++ {
		l := Line{LineNo: i + 1, SKU: skus[rng.Intn(len(skus))], Qty: 1 + rng.Int63n(4), UnitPrice: rng.Int63n(30000),
			Discountable: rng.Intn(4) != 0, EarnsPoints: rng.Intn(5) != 0}
		switch rng.Intn(40) {
		case 0:
			l.UnitPrice = 0
		case 1:
			l.Qty = rng.Int63n(3) - 1 // sometimes bad
		case 2:
			l.LineNo = rng.Intn(3) // sometimes a duplicate
		case 3:
			l.UnitPrice = MaxAmount / 2 // sometimes too large
		}
		if rng.Intn(20) == 0 {
			l.LineNo = n - i + 7 // numbered out of order
		}
		b.Lines = append(b.Lines, l)
	}
	if rng.Intn(3) != 0 {
		c := &Coupon{ID: pick("c", "c<&>\u2028", "券\xff", "WELCOME-1"), Threshold: rng.Int63n(4) * rng.Int63n(5000), Value: 1 + rng.Int63n(3000)}
		if rng.Intn(2) == 0 {
			c.SKUs = skus[rng.Intn(3) : 3+rng.Intn(2)]
		}
		switch rng.Intn(10) {
		case 0:
			c.ValidFrom = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		case 1:
			c.ValidUntil = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
		case 2:
			c.Value = 0
		}
		b.Coupon = c
	}
	var m *Member
	if rng.Intn(5) != 0 {
		m = &Member{ID: pick("m", "m&<x>", "会员\u2029"), Tier: pick("", "silver", "gold", "diamond"),
			Birthday: pick("", "", "03-18", "02-29", "2000-02-29", "12-31", "bad", "13-40", "1990-01-01"), Points: rng.Int63n(60000)}
		if rng.Intn(30) == 0 {
			m.Tier = "platinum"
		}
	}
	switch rng.Intn(4) {
	case 0:
		b.RedeemPoints = 100 * rng.Int63n(300)
	case 1:
		b.RedeemPoints = 7 * rng.Int63n(2000)
	case 2:
		if rng.Intn(10) == 0 {
			b.RedeemPoints = rng.Int63n(1000) - 10
		}
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int63n(3*366*24*60)) * time.Minute)
	return b, m, at
}

// goldenLineTexts is what a Go caller reads as a line's reasons.
func goldenLineTexts(l QuoteLine) []string { return l.Reasons.Strings() }

// goldenRecord is everything a quote (or its error) shows: its JSON as
// json.Marshal writes it, that JSON decoded and written again, as an encoder
// without HTML escaping writes it, and the reason text of the quote and of
// each line.
func goldenRecord(t *testing.T, q Quote, err error) []byte {
	var out bytes.Buffer
	if err != nil {
		fmt.Fprintf(&out, "error: %s\n", err)
		return out.Bytes()
	}
	js, merr := json.Marshal(q)
	if merr != nil {
		t.Fatal(merr)
	}
	out.Write(js)
	out.WriteByte('\n')
	// What a till's CLI or another agent decodes writes back the same, but
	// for text that was not UTF-8 (decoded as U+FFFD, then written as is).
	var back Quote
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if js2, _ := json.Marshal(back); !bytes.Equal(js, js2) {
		fmt.Fprintf(&out, "decoded: %s\n", js2)
	}
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if merr := enc.Encode(q); merr != nil {
		t.Fatal(merr)
	}
	fmt.Fprintf(&out, "quote: %q\n", q.Reasons)
	for _, l := range q.Lines {
		fmt.Fprintf(&out, "line %d: %q\n", l.LineNo, goldenLineTexts(l))
	}
	return out.Bytes()
}

// TestQuoteGolden prices goldenCases generated baskets and the benchmark's
// basket and compares every byte they show with the golden file.
func TestQuoteGolden(t *testing.T) {
	progs := goldenPrograms(t)
	rng := rand.New(rand.NewSource(20261205))
	sum := sha256.New()
	var full bytes.Buffer
	seen := make([]bool, len(reasonKinds))
	keep := func(i int, rec []byte) {
		fresh := i < goldenFull
		for k, s := range reasonKinds {
			if !seen[k] && bytes.Contains(rec, []byte(s)) {
				seen[k], fresh = true, true
			}
		}
		if fresh {
			fmt.Fprintf(&full, "# case %d\n", i)
			full.Write(rec)
		}
	}
	bench := basket50()
	q, err := DefaultProgram().Quote(bench, &Member{ID: "m", Tier: "gold", Birthday: "03-18", Points: 100000}, local(2026, 3, 18, 12, 0, 0))
	rec := goldenRecord(t, q, err)
	sum.Write(rec)
	keep(-1, rec)
	for i := 0; i < goldenCases; i++ {
		p := progs[rng.Intn(len(progs))]
		b, m, at := goldenBasket(rng)
		q, err := p.Quote(b, m, at)
		rec := goldenRecord(t, q, err)
		sum.Write(rec)
		keep(i, rec)
	}
	for k, ok := range seen {
		if !ok {
			t.Errorf("no generated case shows %q; widen goldenBasket", reasonKinds[k])
		}
	}
	got := fmt.Sprintf("sha256 %s over %d cases\n%s", hex.EncodeToString(sum.Sum(nil)), goldenCases+1, full.Bytes())
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	if got == string(want) {
		return
	}
	// Name the first kept line that differs, else the digest.
	gh, gb, _ := strings.Cut(got, "\n")
	wh, wb, _ := strings.Cut(string(want), "\n")
	gs, ws := bufio.NewScanner(strings.NewReader(gb)), bufio.NewScanner(strings.NewReader(wb))
	gs.Buffer(nil, 1<<24)
	ws.Buffer(nil, 1<<24)
	for n := 2; ; n++ {
		g, w := gs.Scan(), ws.Scan()
		if !g && !w {
			break
		}
		if g != w || gs.Text() != ws.Text() {
			t.Fatalf("%s line %d differs:\n got %s\nwant %s", goldenFile, n, gs.Text(), ws.Text())
		}
	}
	t.Fatalf("a case not kept in full differs:\n got %s\nwant %s", gh, wh)
}
