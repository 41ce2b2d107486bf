package hq

import (
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// fraudParams maps the query parameters (and CLI flags) to the settings.
var fraudParams = []struct {
	Name string
	Get  func(*FraudSettings) *int
}{
	{"no_purchase_days", func(s *FraudSettings) *int { return &s.NoPurchaseDays }},
	{"run_gap", func(s *FraudSettings) *int { return &s.RunGap }},
	{"run_min", func(s *FraudSettings) *int { return &s.RunMin }},
	{"prefix_len", func(s *FraudSettings) *int { return &s.PrefixLen }},
	{"prefix_min", func(s *FraudSettings) *int { return &s.PrefixMin }},
	{"burst_count", func(s *FraudSettings) *int { return &s.BurstCount }},
	{"burst_minutes", func(s *FraudSettings) *int { return &s.BurstMinutes }},
}

// FraudQuery is the query string asking the server for month with the
// non-zero thresholds of over.
func FraudQuery(month string, over FraudSettings, pii bool) string {
	v := []string{"month=" + month}
	for _, p := range fraudParams {
		if n := *p.Get(&over); n != 0 {
			v = append(v, p.Name+"="+strconv.Itoa(n))
		}
	}
	if pii {
		v = append(v, "pii=true")
	}
	return strings.Join(v, "&")
}

// FraudFlag names a threshold's flag and what it sets, for the CLI.
type FraudFlag struct {
	Name, Usage string
	Value       *int
}

// FraudFlags lists the thresholds of s as flags.
func FraudFlags(s *FraudSettings) []FraudFlag {
	d := FraudSettings{}.WithDefaults()
	usage := map[string]string{
		"no_purchase_days": "fraud: days after enrolling without a sale",
		"run_gap":          "fraud: largest step between mobiles of a run",
		"run_min":          "fraud: mobiles that make a run",
		"prefix_len":       "fraud: digits of a shared mobile prefix",
		"prefix_min":       "fraud: mobiles of one cashier sharing a prefix",
		"burst_count":      "fraud: enrolments that make a burst",
		"burst_minutes":    "fraud: minutes a burst fits in",
	}
	out := make([]FraudFlag, len(fraudParams))
	for i, p := range fraudParams {
		out[i] = FraudFlag{Name: "fraud-" + strings.ReplaceAll(p.Name, "_", "-"),
			Usage: fmt.Sprintf("%s [%d]", usage[p.Name], *p.Get(&d)), Value: p.Get(s)}
	}
	return out
}

func (s *Server) handleFraud(w http.ResponseWriter, r *http.Request, c Credential) {
	q := r.URL.Query()
	var over FraudSettings
	for _, p := range fraudParams {
		if v := q.Get(p.Name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				writeError(w, http.StatusBadRequest, "bad_request", p.Name+" must be a whole number above 0")
				return
			}
			*p.Get(&over) = n
		}
	}
	pii := false
	switch q.Get("pii") {
	case "", "false":
	case "true":
		if !c.Has(RightPII) {
			writeError(w, http.StatusForbidden, "forbidden", "pii=true needs an admin credential issued with the pii right (hq store add --admin --pii); leave it out to see mobiles masked")
			return
		}
		pii = true
	default:
		writeError(w, http.StatusBadRequest, "bad_request", "pii must be true or false")
		return
	}
	f := q.Get("format")
	if f != "" && f != "json" && f != "html" && f != "text" {
		writeError(w, http.StatusBadRequest, "bad_format", "format must be json, html or text")
		return
	}
	rep, err := s.FraudReport(r.Context(), q.Get("month"), over, pii)
	switch {
	case errors.Is(err, errBadRequest):
		writeError(w, http.StatusBadRequest, "bad_request", strings.TrimPrefix(err.Error(), errBadRequest.Error()+": "))
		return
	case errors.Is(err, ErrNoFraudFacts):
		writeError(w, http.StatusNotImplemented, "not_implemented", err.Error())
		return
	case err != nil:
		s.o.Log.Error("fraud report", "err", err)
		writeError(w, http.StatusServiceUnavailable, "storage", "reading the enrolment facts failed; try again")
		return
	}
	switch f {
	case "", "json":
		writeJSON(w, http.StatusOK, rep)
	case "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = rep.HTML(w)
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_ = rep.Text(w)
	}
}

func (r *FraudReport) settingsLine() string {
	s := r.Settings
	return fmt.Sprintf("no sale within %d days; runs of ≥%d mobiles %d or less apart; ≥%d mobiles sharing %d digits; ≥%d enrolments within %d minutes; card or mobile re-enrolled after a void",
		s.NoPurchaseDays, s.RunMin, s.RunGap, s.PrefixMin, s.PrefixLen, s.BurstCount, s.BurstMinutes)
}

// Text writes the report as aligned plain-text tables.
func (r *FraudReport) Text(w io.Writer) error {
	fmt.Fprintf(w, "Enrolment fraud signals %s (%s), as of %s: %d of %d enrolments flagged\n%s\n\n",
		r.Month, r.TimeZone, r.AsOf.Format("2006-01-02 15:04 MST"), r.Flagged, r.Enrolments, r.settingsLine())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "store\tcashier\tenrolments\tflagged\t")
	for _, s := range FraudSignals {
		fmt.Fprintf(tw, "%s\t", s)
	}
	fmt.Fprintln(tw, "first purchases\tpending\tsales\tvoids\tpts issued\t")
	for _, c := range r.Cashiers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t", c.Store, c.Cashier, c.Enrolments, c.Flagged)
		for _, s := range FraudSignals {
			fmt.Fprintf(tw, "%d\t", c.Signals[s])
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t\n", c.FirstPurchases, c.Pending, c.Sales, c.Voids, c.PointsIssued)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.FlaggedList) == 0 {
		fmt.Fprintln(w, "\nno enrolment flagged")
	} else {
		fmt.Fprintln(w, "\nflagged enrolments")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "store\tcashier\tmember\tentry\tenrolled\tmobile\tsignals\tfirst sale\tsales/voids")
		for _, e := range r.FlaggedList {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\n", e.Store, e.Cashier, e.Member, e.Entry,
				e.EnrolledAt.Format(time.RFC3339), e.Mobile, e.signalText(), fmtTime(e.FirstSale), e.Sales, e.Voids)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return r.repeatsText(w)
}

// repeatsText writes the member codes used at a second till.
func (r *FraudReport) repeatsText(w io.Writer) error {
	if r.Repeats == 0 {
		_, err := fmt.Fprintln(w, "\nno member code used at a second till")
		return err
	}
	fmt.Fprintf(w, "\nmember codes used at a second till: %d (by the till of the second use)\n", r.Repeats)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "store\ttill\trepeats\tlate\tmembers\t")
	for _, t := range r.RepeatTills {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t\n", t.Store, t.Till, t.Repeats, t.Late, t.Members)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "store\ttill\tmember\tcode\tseen\tlate\tfirst used at\tfirst seen")
	for _, x := range r.RepeatList {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%s\n", x.Store, x.Till, x.Member, x.Code,
			x.SeenAt.Format(time.RFC3339), x.lateText(), x.FirstStore, x.FirstTill, x.FirstSeenAt.Format(time.RFC3339))
	}
	return tw.Flush()
}

func (x FraudRepeat) lateText() string {
	if x.Late {
		return "yes"
	}
	return "no"
}

func (e FraudEnrolment) signalText() string {
	s := strings.Join(e.Signals, ",")
	if len(e.Earlier) > 0 {
		s += " (after " + strings.Join(e.Earlier, ",") + ")"
	}
	return s
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

var fraudPage = template.Must(template.New("fraud").Funcs(template.FuncMap{"t": fmtTime}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Enrolment fraud signals {{.R.Month}}</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,td:nth-child(2){text-align:left}.hot{background:#fde2e2}</style></head><body>
<h1>Enrolment fraud signals {{.R.Month}}</h1>
<p>Time zone {{.R.TimeZone}}; as of {{.R.AsOf.Format "2006-01-02 15:04 MST"}}. {{.R.Flagged}} of {{.R.Enrolments}} enrolments flagged.</p>
<p>Signals: {{.Settings}}. A signal is a reason to look, not proof.</p>
<h2>Per cashier</h2>
<table><tr><th>store</th><th>cashier</th><th>enrolments</th><th>flagged</th>{{range .Signals}}<th>{{.}}</th>{{end}}<th>first purchases</th><th>pending</th><th>sales</th><th>voids</th><th>points issued</th></tr>
{{range .R.Cashiers}}<tr{{if .Flagged}} class="hot"{{end}}><td>{{.Store}}</td><td>{{.Cashier}}</td><td>{{.Enrolments}}</td><td>{{.Flagged}}</td>{{$c := .}}{{range $.Signals}}<td>{{index $c.Signals .}}</td>{{end}}<td>{{.FirstPurchases}}</td><td>{{.Pending}}</td><td>{{.Sales}}</td><td>{{.Voids}}</td><td>{{.PointsIssued}}</td></tr>
{{end}}</table>
<h2>Flagged enrolments</h2>
{{if .R.FlaggedList}}<table><tr><th>store</th><th>cashier</th><th>member</th><th>entry</th><th>enrolled</th><th>mobile</th><th>signals</th><th>first sale</th><th>sales</th><th>voids</th></tr>
{{range .R.FlaggedList}}<tr><td>{{.Store}}</td><td>{{.Cashier}}</td><td>{{.Member}}</td><td>{{.Entry}}</td><td>{{t .EnrolledAt}}</td><td>{{.Mobile}}</td><td>{{.SignalText}}</td><td>{{t .FirstSale}}</td><td>{{.Sales}}</td><td>{{.Voids}}</td></tr>
{{end}}</table>{{else}}<p>No enrolment flagged.</p>{{end}}
<h2>Member codes used at a second till</h2>
{{if .R.Repeats}}<p>{{.R.Repeats}} in the month, by the till of the second use; late: accepted offline before HQ could say the code was spent.</p>
<table><tr><th>store</th><th>till</th><th>repeats</th><th>late</th><th>members</th></tr>
{{range .R.RepeatTills}}<tr class="hot"><td>{{.Store}}</td><td>{{.Till}}</td><td>{{.Repeats}}</td><td>{{.Late}}</td><td>{{.Members}}</td></tr>
{{end}}</table>
<table><tr><th>store</th><th>till</th><th>member</th><th>code</th><th>seen</th><th>late</th><th>first used at</th><th>first seen</th></tr>
{{range .R.RepeatList}}<tr><td>{{.Store}}</td><td>{{.Till}}</td><td>{{.Member}}</td><td>{{.Code}}</td><td>{{t .SeenAt}}</td><td>{{if .Late}}yes{{else}}no{{end}}</td><td>{{.FirstStore}}/{{.FirstTill}}</td><td>{{t .FirstSeenAt}}</td></tr>
{{end}}</table>{{else}}<p>No member code used at a second till.</p>{{end}}
</body></html>
`))

// HTML writes a self-contained page.
func (r *FraudReport) HTML(w io.Writer) error {
	type row struct {
		FraudEnrolment
		SignalText string
	}
	rows := make([]row, len(r.FlaggedList))
	for i, e := range r.FlaggedList {
		rows[i] = row{e, e.signalText()}
	}
	view := *r
	return fraudPage.Execute(w, map[string]any{"R": struct {
		*FraudReport
		FlaggedList []row
	}{&view, rows}, "Signals": FraudSignals, "Settings": r.settingsLine()})
}
