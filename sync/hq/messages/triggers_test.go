package messages

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"posagent/ledger/entry"
	"posagent/ledger/loyalty"
)

var shanghai = mustZone("Asia/Shanghai")

func mustZone(n string) *time.Location {
	l, err := time.LoadLocation(n)
	if err != nil {
		panic(err)
	}
	return l
}

func settings(t *testing.T) *Settings {
	t.Helper()
	s, err := NewSettings(loyalty.DefaultProgram(), map[string]*time.Location{"S2": mustZone("America/New_York")})
	require.NoError(t, err)
	return s
}

func TestMaskName(t *testing.T) {
	for in, want := range map[string]string{"": "", "张": "*", "张三": "张*", "张小三": "张*三", "欧阳小明": "欧**明", " Li Na ": "L***a"} {
		require.Equal(t, want, MaskName(in), in)
	}
}

func TestYuan(t *testing.T) {
	for fen, want := range map[int64]string{0: "0.00", 5: "0.05", 1250: "12.50", 100: "1.00", -1: "-0.01", 123456789: "1234567.89",
		-9223372036854775808: "-92233720368547758.08"} {
		require.Equal(t, want, Yuan(fen), fen)
	}
}

func TestAfterSales(t *testing.T) {
	s := settings(t)
	at := time.Date(2027, 3, 1, 2, 0, 0, 0, time.UTC)
	sale := func(seq uint64, member string, at time.Time) entry.Entry {
		return entry.Entry{Store: "S1", Till: "T1", Seq: seq, Kind: entry.KindSale, MemberID: member, At: at, Sale: &entry.Sale{}}
	}
	m := func(id string, pts int64) Member {
		return Member{ID: id, Name: "张小三", Mobile: "13812341234", Points: pts, Store: "S1"}
	}
	cases := []struct {
		name    string
		es      []entry.Entry
		members map[string]Member
		want    []string // ids
	}{
		{"below the amount", []entry.Entry{sale(1, "M1", at)}, map[string]Member{"M1": m("M1", 999)}, nil},
		{"exactly 10 yuan", []entry.Entry{sale(1, "M1", at)}, map[string]Member{"M1": m("M1", 1000)}, []string{"after_sale/S1/T1/1"}},
		{"odd points round down to steps", []entry.Entry{sale(1, "M1", at)}, map[string]Member{"M1": m("M1", 1099)}, []string{"after_sale/S1/T1/1"}},
		{"latest sale of several", []entry.Entry{sale(1, "M1", at), sale(2, "M1", at.Add(time.Hour)), sale(3, "M1", at.Add(-time.Hour))},
			map[string]Member{"M1": m("M1", 5000)}, []string{"after_sale/S1/T1/2"}},
		{"no mobile", []entry.Entry{sale(1, "M1", at)}, map[string]Member{"M1": {ID: "M1", Points: 5000}}, nil},
		{"walk-in sale", []entry.Entry{sale(1, "", at)}, map[string]Member{}, nil},
		{"negative balance", []entry.Entry{sale(1, "M1", at)}, map[string]Member{"M1": m("M1", -5000)}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var ids []string
			for _, msg := range s.AfterSales(c.es, c.members) {
				ids = append(ids, msg.ID)
			}
			require.Equal(t, c.want, ids)
		})
	}
	msgs := s.AfterSales([]entry.Entry{sale(7, "M1", at)}, map[string]Member{"M1": m("M1", 1250)})
	require.Len(t, msgs, 1)
	require.Equal(t, "张*三您好，您当前积分1250分，可抵扣12.00元，欢迎下次到店使用。", msgs[0].Text)
	require.Equal(t, "13812341234", msgs[0].To)
	require.Equal(t, KindAfterSale, msgs[0].Kind)
	require.Equal(t, "zh", msgs[0].Lang)

	off := settings(t)
	off.Program.Messages.AfterSale.Enabled = false
	require.Empty(t, off.AfterSales([]entry.Entry{sale(7, "M1", at)}, map[string]Member{"M1": m("M1", 99999)}))
}

func TestTierUpgrades(t *testing.T) {
	s := settings(t)
	s.Program.Messages.Lang = "en"
	at := time.Date(2027, 3, 1, 20, 0, 0, 0, time.UTC) // 04:00 on 2 March in Shanghai
	tier := func(seq uint64, from, to string) entry.Entry {
		return entry.Entry{Store: "S1", Till: "T1", Seq: seq, Kind: entry.KindTierChange, MemberID: "M1", At: at, Tier: &entry.TierChange{From: from, To: to}}
	}
	members := map[string]Member{"M1": {ID: "M1", Name: "Li Na", Mobile: "1", Store: "S1"}}
	msgs := s.TierUpgrades([]entry.Entry{tier(1, "silver", "gold"), tier(2, "gold", "silver"), tier(3, "gold", "diamond"), tier(4, "gold", "platinum")}, members)
	require.Len(t, msgs, 2)
	require.Equal(t, "tier_upgrade/S1/T1/1", msgs[0].ID)
	require.Equal(t, "Congratulations L***a, you are now a Gold member, with 100 bonus points!", msgs[0].Text)
	require.Equal(t, "tier_upgrade/S1/T1/3", msgs[1].ID)
	require.Contains(t, msgs[1].Text, "Diamond member, with 0 bonus")
}

func TestBirthdayCouponWithoutMobile(t *testing.T) {
	s := settings(t)
	_, c, ok := s.Birthday(Date{2027, 3, 1}, Member{ID: "M1", Birthday: "03-04"}, time.Now())
	require.False(t, ok)
	require.NotNil(t, c)
	s.Program.Messages.Birthday.Coupon = nil
	_, c, ok = s.Birthday(Date{2027, 3, 1}, Member{ID: "M1", Mobile: "1", Birthday: "03-04"}, time.Now())
	require.True(t, ok)
	require.Nil(t, c)
}

func TestBirthday(t *testing.T) {
	s := settings(t)
	now := time.Date(2027, 3, 1, 1, 0, 0, 0, time.UTC)
	cases := []struct {
		day      Date
		birthday string
		want     bool
	}{
		{Date{2027, 3, 1}, "1990-03-04", true},
		{Date{2027, 3, 1}, "03-04", true},
		{Date{2027, 3, 1}, "1990-03-03", false},
		{Date{2027, 3, 1}, "1990-03-05", false},
		{Date{2027, 2, 25}, "2000-02-29", true}, // 2027 has no 29 February: the 28th
		{Date{2028, 2, 25}, "2000-02-29", false},
		{Date{2028, 2, 26}, "2000-02-29", true},
		{Date{2027, 12, 29}, "01-01", true}, // across the year end
		{Date{2027, 3, 1}, "", false},
		{Date{2027, 3, 1}, "13-45", false},
	}
	for _, c := range cases {
		m := Member{ID: "M1", Name: "王五", Mobile: "139", Birthday: c.birthday, Store: "S1"}
		msg, coupon, ok := s.Birthday(c.day, m, now)
		require.Equal(t, c.want, ok, "%v %s", c.day, c.birthday)
		require.Equal(t, c.want, coupon != nil, "%v %s", c.day, c.birthday)
		if ok {
			target := c.day.AddDays(3)
			require.Equal(t, "birthday/M1/"+itoa(target.Y), msg.ID)
			require.NotNil(t, coupon)
			require.Equal(t, "birthday-"+itoa(target.Y)+"-M1", coupon.ID)
			require.Equal(t, int64(2000), coupon.Value)
			require.Contains(t, msg.Text, "王*您好，3天后（"+target.String()+"）是您的生日：生日当天消费2倍积分，另赠20.00元生日券（满100.00元可用，"+c.day.AddDays(13).String()+"前有效）")
			from, _ := time.Parse(time.RFC3339, coupon.ValidFrom)
			require.Equal(t, c.day.Start(shanghai).Unix(), from.Unix())
		}
	}
	require.Equal(t, []string{"02-28", "02-29"}, BirthdayKeys(Date{2027, 2, 28}))
	require.Equal(t, []string{"02-28"}, BirthdayKeys(Date{2028, 2, 28}))
	require.Equal(t, []string{"02-29"}, BirthdayKeys(Date{2028, 2, 29}))
}

func itoa(n int) string { return Date{n, 1, 1}.String()[:4] }

func TestPointsExpiringAndLots(t *testing.T) {
	s := settings(t)
	day := Date{2027, 12, 1}
	target, on := s.ExpiryTarget(day)
	require.True(t, on)
	require.Equal(t, Date{2027, 12, 31}, target)
	msg, ok := s.PointsExpiring(day, Member{ID: "M9", Name: "赵六", Mobile: "1"}, 1234, time.Now())
	require.True(t, ok)
	require.Equal(t, "points_expiring/M9/2027-12-31", msg.ID)
	require.Equal(t, "赵*您好，您有1234分积分（可抵12.00元）将于2027-12-31到期，请在30天内使用。", msg.Text)
	_, ok = s.PointsExpiring(day, Member{ID: "M9", Mobile: "1"}, 0, time.Now())
	require.False(t, ok)

	for _, c := range []struct{ bal, at, later, want int64 }{
		{100, 50, 0, 50}, {30, 50, 0, 30}, {100, 50, 80, 20}, {100, 50, 100, 0}, {-20, 50, 0, 0}, {500, 50, 100, 50},
	} {
		require.Equal(t, c.want, Expiring(c.bal, c.at, c.later), "%+v", c)
	}

	// Late on 31 December in New York is already 1 January in Shanghai.
	nyNewYear := time.Date(2026, 12, 31, 20, 0, 0, 0, mustZone("America/New_York"))
	es := []entry.Entry{
		{Store: "S1", MemberID: "M1", Kind: entry.KindSale, At: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Sale: &entry.Sale{PointsEarned: 10, LotExpiresAt: "2027-12-31"}},
		{Store: "S1", MemberID: "M1", Kind: entry.KindSale, At: time.Date(2026, 12, 31, 16, 30, 0, 0, time.UTC), Sale: &entry.Sale{PointsEarned: 7}},
		{Store: "S2", MemberID: "M2", Kind: entry.KindSale, At: nyNewYear, Sale: &entry.Sale{PointsEarned: 3}},
		{Store: "S1", MemberID: "M1", Kind: entry.KindPointsAdjust, At: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Points: &entry.PointsChange{Points: 100}},
		{Store: "S1", MemberID: "M1", Kind: entry.KindPointsAdjust, At: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Points: &entry.PointsChange{Points: -100}},
		{Store: "S1", MemberID: "M1", Kind: entry.KindRefund, At: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Refund: &entry.Refund{PointsRestored: 4}},
		{Store: "S1", Kind: entry.KindSale, At: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), Sale: &entry.Sale{PointsEarned: 9}},
	}
	require.Equal(t, []Earning{
		{"M1", Date{2027, 12, 31}, 10},
		{"M1", Date{2028, 12, 31}, 7}, // 00:30 on 1 January 2027 in Shanghai
		{"M2", Date{2027, 12, 31}, 3}, // still 2026 in New York
		{"M1", Date{2027, 12, 31}, 100},
		{"M1", Date{2027, 12, 31}, 4},
	}, s.Earnings(es))
}

func TestRecall(t *testing.T) {
	s := settings(t)
	day := Date{2027, 6, 30}
	ds := s.RecallDates(day)
	require.Equal(t, map[string]Date{loyalty.StateAtRisk: day.AddDays(-60), loyalty.StateDormant: day.AddDays(-180)}, ds)
	msg, c, ok := s.Recall(day, loyalty.StateDormant, Member{ID: "M3", Name: "Ann", Mobile: "1", Store: "S2"}, time.Now())
	require.True(t, ok)
	require.Equal(t, "recall/M3/dormant/2027-06-30", msg.ID)
	require.Equal(t, "recall-dormant-20270630-M3", c.ID)
	require.Equal(t, "2027-06-30T00:00:00-04:00", c.ValidFrom) // the store's zone
	require.Equal(t, "2027-07-30T00:00:00-04:00", c.ValidUntil)
	require.True(t, strings.HasPrefix(msg.Text, "A*n您好，好久不见！送您20.00元回归礼券（满100.00元可用，2027-07-29前有效）"), msg.Text)
	// No mobile: no message, but the coupon all the same.
	_, c, ok = s.Recall(day, loyalty.StateAtRisk, Member{ID: "M4"}, time.Now())
	require.False(t, ok)
	require.Equal(t, "recall-at_risk-20270630-M4", c.ID)
	s.Program.Messages.Recall.AtRisk = false
	_, c, ok = s.Recall(day, loyalty.StateAtRisk, Member{ID: "M3", Mobile: "1"}, time.Now())
	require.False(t, ok)
	require.Nil(t, c)
}

func TestDate(t *testing.T) {
	d := Date{2027, 12, 31}
	require.Equal(t, Date{2028, 1, 1}, d.AddDays(1))
	require.Equal(t, 366, Date{2028, 1, 1}.DaysTo(Date{2029, 1, 1}))
	require.True(t, Date{2027, 9, 9}.Before(Date{2027, 10, 1}))
	require.Equal(t, Date{2027, 3, 2}, DateOf(time.Date(2027, 3, 1, 20, 0, 0, 0, time.UTC), shanghai))
}

func TestPointsArithmeticAtTheBounds(t *testing.T) {
	const maxI, minI = int64(1<<63 - 1), int64(-1 << 63)
	require.Equal(t, maxI, AddPoints(maxI, 1))
	require.Equal(t, maxI, AddPoints(maxI-5, 10))
	require.Equal(t, minI, AddPoints(minI, -1))
	require.Equal(t, int64(7), AddPoints(3, 4))
	require.Equal(t, int64(0), Expiring(minI, maxI, maxI))
	require.Equal(t, maxI, Expiring(maxI, maxI, 0))
	require.Equal(t, int64(0), Expiring(maxI, -5, 0))
}
