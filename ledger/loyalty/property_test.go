package loyalty

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"
)

// byteReader hands out numbers from fuzz bytes; past the end it gives zeros.
type byteReader struct{ b []byte }

func (r *byteReader) u8() uint64 {
	if len(r.b) == 0 {
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return uint64(v)
}

func (r *byteReader) u32() uint64 {
	var buf [4]byte
	n := copy(buf[:], r.b)
	r.b = r.b[n:]
	return uint64(binary.LittleEndian.Uint32(buf[:]))
}

// basketFromBytes decodes a basket, a member (or none) and a sale time.
// Values are mostly in range with room for bad ones (zero qty, duplicate
// line numbers, huge prices) so both the success path and the errors run.
func basketFromBytes(data []byte) (Basket, *Member, time.Time) {
	r := &byteReader{data}
	chaos := r.u8()%4 == 0 // a quarter of inputs may carry bad lines
	n := int(r.u8()%60) + 1
	skus := []string{"A", "B", "C", "D"}
	var b Basket
	for i := 0; i < n; i++ {
		flags := r.u8()
		l := Line{
			LineNo:       i + 1,
			SKU:          skus[flags%4],
			Qty:          int64(r.u8()%5) + 1,
			UnitPrice:    int64(r.u32() % 200000),
			Discountable: flags&4 != 0,
			EarnsPoints:  flags&8 == 0,
		}
		if chaos {
			switch flags >> 5 {
			case 1:
				l.Qty = int64(r.u8()) - 128 // often bad
			case 2:
				l.UnitPrice = int64(r.u32())<<20 | int64(r.u32()) // often too large
			case 3:
				l.LineNo = int(r.u8() % 4) // often a duplicate
			}
		}
		b.Lines = append(b.Lines, l)
	}
	cf := r.u8()
	if cf&1 != 0 {
		c := &Coupon{ID: "c", Threshold: int64(r.u32() % 300000), Value: int64(r.u32()%20000) + 1}
		if cf&2 != 0 {
			c.SKUs = skus[:cf>>6+1]
		}
		b.Coupon = c
	}
	b.RedeemPoints = int64(r.u32()%200) * 100
	var m *Member
	if mf := r.u8(); mf%4 != 0 {
		m = &Member{ID: "m", Tier: []string{"", "silver", "gold", "diamond"}[mf%4], Points: int64(r.u32() % 100000)}
		m.Birthday = []string{"", "03-18", "02-29", "2000-02-29", "12-31", "bad"}[int(mf>>2)%6]
	}
	if m == nil && !chaos {
		b.RedeemPoints = 0
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.u32()%(2*366*24*60)) * time.Minute)
	return b, m, at
}

// TestQuoteProperties runs seeded random baskets: every accepted quote keeps
// the invariants (allocations sum exactly, nothing negative, caps held) and
// is deterministic.
func TestQuoteProperties(t *testing.T) {
	p := DefaultProgram()
	rng := rand.New(rand.NewSource(20260318))
	buf := make([]byte, 600)
	var ok, nonMember, coupon, redeem, points int
	for i := 0; i < 3000; i++ {
		rng.Read(buf)
		b, m, at := basketFromBytes(buf)
		q, err := p.Quote(b, m, at)
		if err != nil {
			continue
		}
		ok++
		if m == nil {
			nonMember++
		}
		if q.CouponValue > 0 {
			coupon++
		}
		if q.RedeemPoints > 0 {
			redeem++
		}
		if q.PointsEarned > 0 {
			points++
		}
		checkInvariants(t, p, b, m, q)
		q2, err := p.Quote(b, m, at)
		if err != nil || !reflect.DeepEqual(q, q2) {
			t.Fatalf("quote not deterministic:\n%+v\n%+v %v", q, q2, err)
		}
	}
	if ok < 1000 || nonMember < 100 || coupon < 100 || redeem < 100 || points < 100 {
		t.Fatalf("accepted %d of 3000 random baskets (non-member %d, coupon %d, redeem %d, points %d); the generator is off",
			ok, nonMember, coupon, redeem, points)
	}
}

func TestAllocateProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := 0; i < 5000; i++ {
		n := rng.Intn(30) + 1
		w := make([]int64, n)
		var sum int64
		for j := range w {
			switch rng.Intn(4) {
			case 0:
				w[j] = 0
			case 1:
				w[j] = rng.Int63n(MaxAmount / 64)
			default:
				w[j] = rng.Int63n(1000)
			}
			sum += w[j]
		}
		if sum == 0 {
			continue
		}
		total := rng.Int63n(sum + 1)
		out := make([]int64, n)
		allocate(total, w, out, newScratch(n))
		var got int64
		for j, v := range out {
			got += v
			// Each part is the floor or the ceiling of its exact share.
			floor := mulDiv(total, w[j], sum)
			if v != floor && v != floor+1 || v < 0 || v > w[j] {
				t.Fatalf("part %d = %d for weight %d of %d, total %d", j, v, w[j], sum, total)
			}
		}
		if got != total {
			t.Fatalf("parts sum to %d, want %d (w %v)", got, total, w)
		}
		// The ones rounded up have remainders no smaller than the ones not.
		type rr struct {
			rem uint64
			up  bool
			i   int
		}
		var rs []rr
		for j := range w {
			_, rem := mulDivRem(uint64(total), uint64(w[j]), uint64(sum))
			rs = append(rs, rr{rem, out[j] != mulDiv(total, w[j], sum), j})
		}
		sort.SliceStable(rs, func(a, b int) bool { return rs[a].rem > rs[b].rem })
		for j := 1; j < len(rs); j++ {
			if rs[j].up && !rs[j-1].up {
				t.Fatalf("largest remainder broken: %+v", rs)
			}
		}
	}
}

func FuzzQuote(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 4, 1, 10, 0, 0, 0, 8, 2, 20, 0, 0, 0, 1, 5, 0, 0, 0, 200, 0, 0, 0, 10, 0, 0, 0, 9})
	f.Add(make([]byte, 300))
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 8; i++ {
		b := make([]byte, 200)
		rng.Read(b)
		f.Add(b)
	}
	p := DefaultProgram()
	f.Fuzz(func(t *testing.T, data []byte) {
		b, m, at := basketFromBytes(data)
		q, err := p.Quote(b, m, at)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		checkInvariants(t, p, b, m, q)
	})
}

func FuzzParseProgram(f *testing.F) {
	f.Add(DefaultProgramYAML())
	f.Add([]byte("version: 1\n"))
	f.Add([]byte("tiers: {a: {name_zh: x, name_en: y, discount_bp: 1}}\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := ParseProgram(src)
		if err != nil {
			return
		}
		// Whatever parses is usable: a tier to price at, a zone, sane steps.
		if len(p.Tiers) == 0 || p.tierRank(p.EnrolTier) < 0 || p.loc == nil || p.FenPerPoint < 1 ||
			p.Redemption.Step < 1 || p.Redemption.Step*100%p.Redemption.PointsPerYuan != 0 {
			t.Fatalf("accepted an unusable program: %+v", p)
		}
		q, err := p.Quote(Basket{Lines: []Line{line(1, "A", 2, 12345)}, RedeemPoints: p.Redemption.Step},
			&Member{ID: "m", Points: MaxPoints}, plainDay)
		if err != nil {
			t.Fatalf("parsed program cannot quote: %v", err)
		}
		checkInvariants(t, p, Basket{Lines: []Line{line(1, "A", 2, 12345)}, RedeemPoints: p.Redemption.Step}, &Member{ID: "m", Points: MaxPoints}, q)
	})
}

// TestQuotesShareNoBuffers: quotes reuse pricing buffers, so a quote kept
// while others are priced, in parallel, of every size, must stay as it was
// and equal a quote priced alone.
func TestQuotesShareNoBuffers(t *testing.T) {
	p := DefaultProgram()
	type input struct {
		b  Basket
		m  *Member
		at time.Time
	}
	rng := rand.New(rand.NewSource(11))
	buf := make([]byte, 600)
	var ins []input
	var want []Quote
	for len(ins) < 200 {
		rng.Read(buf)
		b, m, at := basketFromBytes(buf)
		if q, err := p.Quote(b, m, at); err == nil {
			ins = append(ins, input{b, m, at})
			want = append(want, q)
		}
	}
	// What the first answers say, taken before anything else is priced: the
	// JSON holds every figure and every reason, the lines' written as read.
	kept := make([][]byte, len(want))
	for i, q := range want {
		var err error
		if kept[i], err = json.Marshal(q); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for k := 0; k < 3*len(ins); k++ {
				i := (k*7 + g*13) % len(ins)
				q, err := p.Quote(ins[i].b, ins[i].m, ins[i].at)
				if err != nil {
					errs <- fmt.Sprintf("basket %d priced in parallel: %v", i, err)
					return
				}
				// Earlier quotes are read while others are priced.
				js, _ := json.Marshal(q)
				old, _ := json.Marshal(want[(i+1)%len(want)])
				if !bytes.Equal(js, kept[i]) || !bytes.Equal(old, kept[(i+1)%len(want)]) {
					errs <- fmt.Sprintf("basket %d priced in parallel differs", i)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	for i := range want {
		if js, _ := json.Marshal(want[i]); !bytes.Equal(js, kept[i]) {
			t.Fatalf("quote %d changed after later quotes were priced", i)
		}
	}
	// A line's reasons are a new slice each time: changing one changes nothing.
	q := want[0]
	rs := q.Lines[0].Reasons.Strings()
	rs[0] = "changed"
	if got := q.Lines[0].Reasons.Strings(); got[0] == "changed" || len(got) != q.Lines[0].Reasons.Len() {
		t.Fatalf("line reasons %q", got)
	}
}
