package hq

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"text/tabwriter"

	"posagent/ledger/entry"
)

// fmtBP shows basis points as a percentage with two decimals.
func fmtBP(bp int64) string { return fmt.Sprintf("%d.%02d%%", bp/100, bp%100) }

// Text writes the report as aligned plain-text tables.
func (r *KPIReport) Text(w io.Writer) error {
	fmt.Fprintf(w, "KPIs %s (%s), life cycle as of %s: at risk ≥%d days, dormant ≥%d days without a sale\n\n",
		r.Month, r.TimeZone, r.AsOf.Format("2006-01-02 15:04 MST"), r.AtRiskDays, r.DormantDays)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "store\tmembers\tnew\tactive\trepurchase\tmember sales\tavg ticket\tpts issued\tpts redeemed\tredemption\tat risk\tdormant\t")
	row := func(name string, k KPI) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%d\t%s\t%d\t%d\t%s\t%d\t%d\t\n", name, k.Members, k.NewMembers, k.ActiveMembers,
			fmtBP(k.RepurchaseBP), k.MemberSales, entry.FormatFen(k.AvgTicket), k.PointsIssued, k.PointsRedeemed, fmtBP(k.RedemptionBP), k.AtRisk, k.Dormant)
	}
	for _, k := range r.Stores {
		row(k.Store, k)
	}
	row("CHAIN", r.Chain)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nper cashier")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "store\tcashier\tenrolments\tpoints issued\t")
	for _, c := range r.Cashiers {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t\n", c.Store, c.Cashier, c.Enrolments, c.PointsIssued)
	}
	return tw.Flush()
}

type series struct {
	Name  string
	Color string
	Vals  []int64
}

// barChart draws grouped bars as inline SVG (no scripts, no network).
func barChart(title string, labels []string, ss []series, format func(int64) string) template.HTML {
	const h, top, bottom, left = 220, 30, 40, 10
	group := 18*len(ss) + 14
	width := left*2 + group*max(len(labels), 1)
	var maxV int64 = 1
	for _, s := range ss {
		for _, v := range s.Vals {
			maxV = max(maxV, v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<figure><figcaption>%s</figcaption><svg width="%d" height="%d" role="img" aria-label="%s">`,
		template.HTMLEscapeString(title), max(width, 240), h, template.HTMLEscapeString(title))
	plot := h - top - bottom
	for gi, l := range labels {
		x0 := left + gi*group
		for si, s := range ss {
			v := s.Vals[gi]
			bh := int(int64(plot) * max(v, 0) / maxV)
			x := x0 + si*18
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="16" height="%d" fill="%s"><title>%s %s: %s</title></rect>`,
				x, top+plot-bh, bh, s.Color, template.HTMLEscapeString(l), template.HTMLEscapeString(s.Name), format(v))
			fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="9" text-anchor="middle">%s</text>`, x+8, top+plot-bh-3, format(v))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="middle">%s</text>`, x0+group/2-7, h-bottom+16, template.HTMLEscapeString(l))
	}
	for si, s := range ss {
		fmt.Fprintf(&b, `<rect x="%d" y="8" width="10" height="10" fill="%s"/><text x="%d" y="17" font-size="11">%s</text>`,
			left+si*120, s.Color, left+si*120+14, template.HTMLEscapeString(s.Name))
	}
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String())
}

var kpiPage = template.Must(template.New("kpi").Funcs(template.FuncMap{"bp": fmtBP, "fen": entry.FormatFen}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HQ KPIs {{.R.Month}}</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}figure{display:inline-block;margin:0 1.5em 1.5em 0;vertical-align:top}
figcaption{font-weight:bold;margin-bottom:4px}</style></head><body>
<h1>Member KPIs {{.R.Month}}</h1>
<p>Time zone {{.R.TimeZone}}; life cycle as of {{.R.AsOf.Format "2006-01-02 15:04 MST"}} (at risk ≥ {{.R.AtRiskDays}} days, dormant ≥ {{.R.DormantDays}} days without a sale).</p>
{{range .Charts}}{{.}}{{end}}
<h2>Per store</h2>
<table><tr><th>store</th><th>members</th><th>new</th><th>active</th><th>repurchase</th><th>member sales</th><th>avg ticket (¥)</th><th>points issued</th><th>points redeemed</th><th>redemption</th><th>at risk</th><th>dormant</th></tr>
{{range .Rows}}<tr><td>{{if .Store}}{{.Store}}{{else}}<b>chain</b>{{end}}</td><td>{{.Members}}</td><td>{{.NewMembers}}</td><td>{{.ActiveMembers}}</td><td>{{bp .RepurchaseBP}}</td><td>{{.MemberSales}}</td><td>{{fen .AvgTicket}}</td><td>{{.PointsIssued}}</td><td>{{.PointsRedeemed}}</td><td>{{bp .RedemptionBP}}</td><td>{{.AtRisk}}</td><td>{{.Dormant}}</td></tr>
{{end}}</table>
<h2>Per cashier</h2>
<table><tr><th>store</th><th>cashier</th><th>enrolments</th><th>points issued</th></tr>
{{range .R.Cashiers}}<tr><td>{{.Store}}</td><td>{{.Cashier}}</td><td>{{.Enrolments}}</td><td>{{.PointsIssued}}</td></tr>
{{end}}</table>
</body></html>
`))

// HTML writes a self-contained page with the tables and inline SVG charts.
func (r *KPIReport) HTML(w io.Writer) error {
	labels := make([]string, len(r.Stores))
	col := func(f func(KPI) int64) []int64 {
		v := make([]int64, len(r.Stores))
		for i, k := range r.Stores {
			v[i] = f(k)
		}
		return v
	}
	for i, k := range r.Stores {
		labels[i] = k.Store
	}
	n := func(v int64) string { return fmt.Sprint(v) }
	charts := []template.HTML{
		barChart("Members: new and active", labels, []series{
			{"new", "#4e79a7", col(func(k KPI) int64 { return int64(k.NewMembers) })},
			{"active", "#59a14f", col(func(k KPI) int64 { return int64(k.ActiveMembers) })},
		}, n),
		barChart("Repurchase rate (second sale within 30 days)", labels, []series{
			{"repurchase", "#f28e2b", col(func(k KPI) int64 { return k.RepurchaseBP })},
		}, fmtBP),
		barChart("Member average ticket (¥)", labels, []series{
			{"avg ticket", "#76b7b2", col(func(k KPI) int64 { return k.AvgTicket })},
		}, entry.FormatFen),
		barChart("Points issued and redeemed", labels, []series{
			{"issued", "#edc948", col(func(k KPI) int64 { return k.PointsIssued })},
			{"redeemed", "#b07aa1", col(func(k KPI) int64 { return k.PointsRedeemed })},
		}, n),
		barChart("At risk and dormant members", labels, []series{
			{"at risk", "#ff9da7", col(func(k KPI) int64 { return int64(k.AtRisk) })},
			{"dormant", "#e15759", col(func(k KPI) int64 { return int64(k.Dormant) })},
		}, n),
	}
	return kpiPage.Execute(w, map[string]any{"R": r, "Charts": charts, "Rows": append(append([]KPI{}, r.Stores...), r.Chain)})
}
