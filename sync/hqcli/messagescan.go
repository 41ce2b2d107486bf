package hqcli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"posagent/sync/hq"
	"posagent/sync/hq/messages"
)

// startMessageDays runs the per-day reminder jobs (birthday, points
// expiring, recall) in the background of hq serve until ctx ends; stop
// waits for the round in progress.
func startMessageDays(ctx context.Context, st hq.Store, log *slog.Logger) (stop func()) {
	ds, ok := st.(hq.MessageDayStore)
	if !ok {
		log.Warn("reminders: this storage keeps no reminder indexes; no birthday, expiry or recall reminders")
		return func() {}
	}
	return inBackground(ctx, hq.MessageDays{Store: ds, Load: hq.LoadMessageSettings(st), Log: log}.Run)
}

// inBackground runs fn until ctx ends; stop ends it and waits for it.
func inBackground(ctx context.Context, fn func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return func() { cancel(); <-done }
}

func messageScanCmd(f *flags) *cobra.Command {
	var day string
	c := &cobra.Command{
		Use:   "scan",
		Short: "Run the per-day reminder jobs (birthday, points expiring, recall) now",
		Long: `Run the reminder job of one day (--day) or, without --day, of every day
since the last one run up to today (at most ` + fmt.Sprint(hq.MaxCatchUpDays) + ` days back), on the storage
(--db or --pg). hq serve does this by itself each day; a day already run,
by this command or by any HQ process, is left alone, so running it twice
or on several HQ machines sends nothing twice. Days are in the time zone
of the program in force.`,
		Example: `  posagent hq messages scan --pg postgres://hq@db/hq
  posagent hq messages scan --db hq.db --day 2027-03-01`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.url != "" {
				return errors.New("messages scan runs on the storage: give --db or --pg, not --url (a running hq serve scans by itself)")
			}
			ctx := cmd.Context()
			st, err := f.openStore(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			ds, ok := st.(hq.MessageDayStore)
			if !ok {
				return errors.New("this storage keeps no reminder indexes")
			}
			now := time.Now()
			set, err := hq.LoadMessageSettings(st)(ctx, now)
			if err != nil {
				return err
			}
			ds.SetMessageSettings(set)
			var rs []hq.MessageDay
			if day != "" {
				d, ok := messages.ParseDate(day)
				if !ok {
					return fmt.Errorf("--day %q: give a date as YYYY-MM-DD, e.g. %s", day, now.Format(time.DateOnly))
				}
				if today := messages.DateOf(now, set.ChainZone()); today.Before(d) {
					return fmt.Errorf("--day %s is after today (%s); a day's reminders go out on that day, not before", d, today)
				}
				r, err := ds.RunMessageDay(ctx, set, d, now)
				if err != nil {
					return err
				}
				rs = append(rs, r)
			} else if rs, err = hq.RunMessageDays(ctx, ds, set, now); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(f.out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "DAY\tRAN\tBIRTHDAY\tPOINTS_EXPIRING\tRECALL")
			for _, r := range rs {
				ran := "yes"
				if !r.Ran {
					ran = "already"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", r.Day, ran, r.Birthday, r.PointsExpiring, r.Recall)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&day, "day", "", "the day to run, YYYY-MM-DD (default: every day due up to today)")
	return c
}
