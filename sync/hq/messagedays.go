package hq

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"posagent/ledger/loyalty"
	"posagent/sync/hq/messages"
)

// MessageDay is what one day's reminder job did.
type MessageDay struct {
	Day            string    `json:"day"` // YYYY-MM-DD in the chain's zone
	Ran            bool      `json:"ran"` // false: it had run already (here or in another HQ process)
	RanAt          time.Time `json:"ran_at,omitzero"`
	Birthday       int       `json:"birthday"`
	PointsExpiring int       `json:"points_expiring"`
	Recall         int       `json:"recall"`
}

// MessageDayStore is a store that keeps the reminder indexes and runs the
// per-day jobs. Both stores implement it.
type MessageDayStore interface {
	// SetMessageSettings sets what ingest's triggers send (nil: nothing).
	SetMessageSettings(*messages.Settings)
	// RunMessageDay runs day's job once across every HQ process sharing
	// the storage: the claim, the coupons, the messages and the record
	// commit together. A day already run returns Ran false.
	RunMessageDay(ctx context.Context, st *messages.Settings, day messages.Date, now time.Time) (MessageDay, error)
	// LastMessageDay is the latest day run; ok false when none has.
	LastMessageDay(ctx context.Context) (day messages.Date, ok bool, err error)
}

// MaxCatchUpDays bounds how far back the jobs catch up after HQ was down:
// reminders of older days are past their use.
const MaxCatchUpDays = 31

// RunMessageDays runs the job of every day from the one after the last run
// (at most MaxCatchUpDays back; today when none ever ran) up to today in
// the chain's zone, in order.
func RunMessageDays(ctx context.Context, st MessageDayStore, set *messages.Settings, now time.Time) ([]MessageDay, error) {
	today := messages.DateOf(now, set.ChainZone())
	from := today
	if last, ok, err := st.LastMessageDay(ctx); err != nil {
		return nil, err
	} else if ok {
		from = last.AddDays(1)
		if earliest := today.AddDays(-MaxCatchUpDays); from.Before(earliest) {
			from = earliest
		}
	}
	var out []MessageDay
	for d := from; !today.Before(d); d = d.AddDays(1) {
		r, err := st.RunMessageDay(ctx, set, d, now)
		if err != nil {
			return out, fmt.Errorf("hq: reminders of %s: %w", d, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// MessageDays runs the per-day jobs in the background: at start (catching
// up) and then every Every, so a day's job runs soon after local midnight
// whichever HQ process gets there first. Each round loads the settings
// afresh (a newly published program takes effect within a round) and
// hands them to the store's ingest triggers too.
type MessageDays struct {
	Store MessageDayStore
	Load  func(ctx context.Context, now time.Time) (*messages.Settings, error)
	Log   *slog.Logger
	Every time.Duration    // [1m]
	Now   func() time.Time // [time.Now]
}

// Round loads the settings and runs the days due.
func (m MessageDays) Round(ctx context.Context) ([]MessageDay, error) {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	t := now()
	set, err := m.Load(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("hq: reminder settings: %w", err)
	}
	m.Store.SetMessageSettings(set)
	return RunMessageDays(ctx, m.Store, set, t)
}

// Run runs rounds until ctx ends.
func (m MessageDays) Run(ctx context.Context) {
	if m.Every <= 0 {
		m.Every = time.Minute
	}
	if m.Log == nil {
		m.Log = slog.Default()
	}
	t := time.NewTicker(m.Every)
	defer t.Stop()
	for {
		rs, err := m.Round(ctx)
		for _, r := range rs {
			if r.Ran {
				m.Log.Info("reminders", "day", r.Day, "birthday", r.Birthday, "points_expiring", r.PointsExpiring, "recall", r.Recall)
			}
		}
		if err != nil && ctx.Err() == nil {
			m.Log.Warn("reminders: the day's job failed; it runs again at the next round", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ProgramAt is the published program in force at now (the default program
// when none is published or none is in force yet).
func ProgramAt(ctx context.Context, st Store, now time.Time) (*loyalty.Program, error) {
	vs, err := st.Programs(ctx)
	if err != nil {
		return nil, err
	}
	var ps loyalty.Programs
	for _, v := range vs {
		p, err := loyalty.ParseProgram([]byte(v.Source))
		if err != nil {
			return nil, fmt.Errorf("published program version %d does not parse: %w", v.Version, err)
		}
		ps = append(ps, p)
	}
	if p, err := ps.At(now); err == nil {
		return p, nil
	}
	return loyalty.DefaultProgram(), nil
}

// LoadMessageSettings is MessageDays.Load for st: the program in force and
// the stores' zones.
func LoadMessageSettings(st Store) func(ctx context.Context, now time.Time) (*messages.Settings, error) {
	return func(ctx context.Context, now time.Time) (*messages.Settings, error) {
		p, err := ProgramAt(ctx, st, now)
		if err != nil {
			return nil, err
		}
		return MessageSettings(ctx, st, p)
	}
}

// HasCoupon reports whether cs holds the issued coupon id.
func HasCoupon(cs []CouponState, id string) bool {
	for _, c := range cs {
		if c.ID == id && c.Known {
			return true
		}
	}
	return false
}

// MessageSettings makes the triggers' settings from the program in force
// and the stores' time zones (from their credentials).
func MessageSettings(ctx context.Context, st Store, p *loyalty.Program) (*messages.Settings, error) {
	cs, err := st.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	zones := map[string]*time.Location{}
	for _, c := range cs {
		if c.Role != RoleStore || c.TimeZone == "" {
			continue
		}
		if l, err := time.LoadLocation(c.TimeZone); err == nil {
			zones[c.ID] = l
		}
	}
	return messages.NewSettings(p, zones)
}
