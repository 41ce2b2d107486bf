package loyalty

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaultProgramIsTheSpec(t *testing.T) {
	p := DefaultProgram()
	if p.Version != 1 || p.TimeZone != "Asia/Shanghai" || p.Location().String() != "Asia/Shanghai" || p.EnrolTier != "silver" {
		t.Fatalf("header: %+v", p)
	}
	wantTiers := []Tier{
		{ID: "silver", NameZH: "银卡", NameEN: "Silver", DiscountBP: 500},
		{ID: "gold", NameZH: "金卡", NameEN: "Gold", DiscountBP: 1200, Upgrade: &UpgradeRule{SalesPerQuarter: 3, Spend365: 500000, BonusPoints: 100}},
		{ID: "diamond", NameZH: "钻石卡", NameEN: "Diamond", DiscountBP: 2000, Upgrade: &UpgradeRule{Spend365: 2000000}},
	}
	if !reflect.DeepEqual(p.Tiers, wantTiers) {
		t.Fatalf("tiers %+v", p.Tiers)
	}
	wantMult := Multipliers{
		Birthday:      Multiplier{Factor: 2},
		BirthdayMonth: Multiplier{Factor: 2, Tiers: []string{"gold", "diamond"}},
		MemberDay:     Multiplier{Factor: 2, DayOfMonth: 18},
		OffSeason:     Multiplier{Factor: 2, Weekday: time.Wednesday, Months: []time.Month{2, 3, 4}},
	}
	if !reflect.DeepEqual(p.Multipliers, wantMult) {
		t.Fatalf("multipliers %+v", p.Multipliers)
	}
	if p.Redemption != (Redemption{PointsPerYuan: 100, Step: 100, MaxShareBP: 5000, OfflineCapPerDay: 5000}) || p.OfflineRedeemCapPerDay() != 5000 {
		t.Fatalf("redemption %+v", p.Redemption)
	}
	if p.FenPerPoint != 100 || p.Lots.ExpireYearsAfter != 1 || p.Life != (LifeCycleRule{60, 180}) {
		t.Fatalf("earning/lots/life %+v", p)
	}
	if !reflect.DeepEqual(p.TopUp, []TopUpStep{{10000000, 500000}, {50000000, 5000000}, {100000000, 12000000}}) {
		t.Fatalf("top-up %+v", p.TopUp)
	}
	if p.Welcome.Value != 1000 || p.Welcome.Threshold != 0 || p.Welcome.ValidDays != 30 {
		t.Fatalf("welcome %+v", p.Welcome)
	}
	rp, np, c := p.ReferralBonus()
	if rp != 50 || np != 50 || c.Value != 500 || c.Threshold != 0 {
		t.Fatalf("referral %d %d %+v", rp, np, c)
	}
	if !p.EffectiveFrom.Equal(time.Date(2000, 1, 1, 0, 0, 0, 0, sh)) {
		t.Fatalf("effective from %v", p.EffectiveFrom)
	}
}

func TestDefaultProgramCopies(t *testing.T) {
	a := DefaultProgram()
	a.Tiers[1].Upgrade.BonusPoints = 999
	a.Multipliers.BirthdayMonth.Tiers[0] = "x"
	a.TopUp[0].Bonus = 1
	b := DefaultProgram()
	if b.Tiers[1].Upgrade.BonusPoints != 100 || b.Multipliers.BirthdayMonth.Tiers[0] != "gold" || b.TopUp[0].Bonus != 500000 {
		t.Fatal("changing one DefaultProgram changed the next")
	}
}

func TestTestdataDefaultMatchesEmbedded(t *testing.T) {
	src, err := os.ReadFile("../../testdata/programs/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, DefaultProgramYAML()) {
		t.Fatal("testdata/programs/default.yaml differs from ledger/loyalty/default_program.yaml; copy it over")
	}
}

func TestParseSecondVersion(t *testing.T) {
	src, err := os.ReadFile("../../testdata/programs/v2-2026h2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProgram(src)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 2 || !p.EffectiveFrom.Equal(time.Date(2026, 6, 30, 16, 0, 0, 0, time.UTC)) {
		t.Fatalf("version %d from %v", p.Version, p.EffectiveFrom)
	}
	if p.Multipliers.MemberDay.Factor != 3 || p.Multipliers.OffSeason.Factor != 0 || p.Multipliers.BirthdayMonth.Factor != 0 {
		t.Fatalf("multipliers %+v", p.Multipliers)
	}
	if u := p.Tiers[1].Upgrade; u.Spend365 != 300000 || u.SalesPerQuarter != 2 || u.BonusPoints != 200 {
		t.Fatalf("gold upgrade %+v (underscores in numbers)", u)
	}
	if !reflect.DeepEqual(p.Referral, Referral{}) || len(p.TopUp) != 0 || p.TopUpBonus(1<<40) != 0 {
		t.Fatal("optional sections not empty")
	}
}

// Every file in testdata/programs/bad starts with "# want: <error prefix>".
func TestParseErrorsNameKeyAndLine(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/programs/bad/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d bad program files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := bytes.Cut(src, []byte("\n"))
			want, ok := strings.CutPrefix(string(first), "# want: ")
			if !ok {
				t.Fatal("first line must be # want: <error>")
			}
			_, err = ParseProgram(src)
			if err == nil {
				t.Fatal("parsed without error")
			}
			if !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error\n  %s\nwant prefix\n  %s", err, want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line == 0 {
				t.Fatalf("not a ParseError with a line: %#v", err)
			}
		})
	}
}

func TestParseOddInput(t *testing.T) {
	for _, src := range []string{"", "   \n", "null", "[1,2]", "version: [", "\t", "version: 1\n", strings.Repeat("a", MaxProgramSize+1)} {
		if _, err := ParseProgram([]byte(src)); err == nil {
			t.Errorf("%.20q parsed", src)
		}
	}
}

func TestEffectiveFromForms(t *testing.T) {
	base := string(DefaultProgramYAML())
	for _, tc := range []struct{ in, want string }{
		{"2026-07-01", "2026-06-30T16:00:00Z"},
		{"2026-07-01T08:30:00", "2026-07-01T00:30:00Z"},
		{"2026-07-01T00:00:00Z", "2026-07-01T00:00:00Z"},
		{"2026-07-01T00:00:00+02:00", "2026-06-30T22:00:00Z"},
	} {
		src := strings.Replace(base, "effective_from: 2000-01-01", "effective_from: "+tc.in, 1)
		p, err := ParseProgram([]byte(src))
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if got := p.EffectiveFrom.UTC().Format(time.RFC3339); got != tc.want {
			t.Errorf("%s → %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestProgramsAt(t *testing.T) {
	v1 := DefaultProgram()
	mk := func(v int, from time.Time) *Program {
		p := DefaultProgram()
		p.Version, p.EffectiveFrom = v, from
		return p
	}
	v2 := mk(2, local(2026, 7, 1, 0, 0, 0))
	v3 := mk(3, local(2027, 1, 1, 0, 0, 0))
	v3b := mk(4, local(2027, 1, 1, 0, 0, 0)) // same start: the higher version wins
	ps := Programs{v3, nil, v1, v3b, v2}
	for _, tc := range []struct {
		at   time.Time
		want int
	}{
		{local(2026, 6, 30, 23, 59, 59), 1},
		{local(2026, 7, 1, 0, 0, 0), 2},
		{time.Date(2026, 6, 30, 16, 0, 0, 0, time.UTC), 2}, // the same instant stamped in UTC
		{time.Date(2026, 6, 30, 15, 59, 59, 0, time.UTC), 1},
		{local(2030, 1, 1, 0, 0, 0), 4},
	} {
		p, err := ps.At(tc.at)
		if err != nil || p.Version != tc.want {
			t.Errorf("At(%v) = %v, %v; want v%d", tc.at, p, err, tc.want)
		}
	}
	if _, err := (Programs{v2}).At(local(2026, 1, 1, 0, 0, 0)); err == nil || !strings.Contains(err.Error(), "earliest starts") {
		t.Errorf("before every version: %v", err)
	}
	if _, err := (Programs{}).At(plainDay); err == nil {
		t.Error("empty Programs gave a program")
	}
	if s := ps.Sorted(); len(s) != 4 || s[0].Version != 1 || s[3].Version != 4 {
		t.Errorf("sorted %v", s)
	}
}

func TestInZone(t *testing.T) {
	p := DefaultProgram()
	if same, err := p.InZone(""); err != nil || same != p {
		t.Fatalf(`InZone("") = %p, %v; want the program itself`, same, err)
	}
	b, err := p.InZone("Europe/Berlin")
	if err != nil || b.Location().String() != "Europe/Berlin" {
		t.Fatalf("InZone(Europe/Berlin) = %v, %v", b, err)
	}
	if p.Location().String() != "Asia/Shanghai" {
		t.Fatalf("the original changed zone: %s", p.Location())
	}
	if _, err := p.InZone("Nowhere/Else"); err == nil {
		t.Fatal("an unknown zone must be refused")
	}
}
