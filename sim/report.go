package sim

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strings"
	"time"
)

// WriteReport writes an HTML page for a run: the summary, an SVG chart of
// the calls each version served over virtual time with the steps and fault
// windows marked, the violations, and the fleet's state after each step.
// The run must have been made without Options.NoRecord.
func (r *Result) WriteReport(w io.Writer) error {
	var summary bytes.Buffer
	r.WriteSummary(&summary)
	data := struct {
		R       *Result
		Summary string
		Chart   template.HTML
		Hash    string
	}{R: r, Summary: summary.String(), Chart: template.HTML(r.chartSVG()), Hash: r.TraceHex()}
	return reportTmpl.Execute(w, data)
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

// chartSVG draws calls per version per bucket as lines.
func (r *Result) chartSVG() string {
	c := r.Chart
	if c == nil || len(c.Series) == 0 {
		return "<p>No call was served.</p>"
	}
	const (
		width, height = 960.0, 360.0
		left, right   = 60.0, 180.0
		top, bottom   = 20.0, 40.0
		plotW, plotH  = width - left - right, height - top - bottom
	)
	n := 0
	var peak int64
	refs := make([]string, 0, len(c.Series))
	for ref, s := range c.Series {
		refs = append(refs, ref)
		n = max(n, len(s))
		for _, v := range s {
			peak = max(peak, v)
		}
	}
	sort.Strings(refs)
	if peak == 0 {
		peak = 1
	}
	end := time.Duration(n) * c.Bucket
	x := func(t time.Duration) float64 { return left + plotW*float64(t)/float64(end) }
	y := func(v int64) float64 { return top + plotH - plotH*float64(v)/float64(peak) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif" font-size="11">`, width, height, width, height)
	// Fault windows behind everything.
	for _, f := range r.Faults {
		to := f.To
		if to < 0 || to > end {
			to = end
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%g" width="%.1f" height="%g" fill="#fdd" opacity="0.6"><title>%s: %s</title></rect>`,
			x(f.From), top, math.Max(1, x(to)-x(f.From)), plotH, template.HTMLEscapeString(f.Kind), template.HTMLEscapeString(f.What))
	}
	// Axes and grid.
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`, left, top+plotH, left+plotW, top+plotH)
	fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="#333"/>`, left, top, left, top+plotH)
	for i := 0; i <= 4; i++ {
		v := peak * int64(i) / 4
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#eee"/><text x="%g" y="%.1f" text-anchor="end">%d</text>`,
			left, y(v), left+plotW, y(v), left-6, y(v)+4, v)
	}
	tick := niceTick(end)
	for t := time.Duration(0); t <= end; t += tick {
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, x(t), top+plotH+16, t)
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle">virtual time (calls per %s)</text>`, left+plotW/2, height-4, c.Bucket.Round(time.Millisecond))
	// Steps.
	for _, sn := range r.Snapshots {
		if sn.Initial {
			continue
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#999" stroke-dasharray="3,3"><title>%s: %s</title></line>`,
			x(sn.At), top, x(sn.At), top+plotH, sn.At, template.HTMLEscapeString(strings.Join(sn.Actions, "; ")))
	}
	// One line per version.
	for i, ref := range refs {
		color := palette[i%len(palette)]
		var pts []string
		for j, v := range c.Series[ref] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(time.Duration(j)*c.Bucket+c.Bucket/2), y(v)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" points="%s"><title>%s</title></polyline>`,
			color, strings.Join(pts, " "), template.HTMLEscapeString(ref))
		ly := top + 14 + float64(i)*16
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="%s" stroke-width="3"/><text x="%g" y="%.1f">%s</text>`,
			left+plotW+12, ly-4, left+plotW+32, ly-4, color, left+plotW+38, ly, template.HTMLEscapeString(ref))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// niceTick picks an axis step giving about eight labels.
func niceTick(end time.Duration) time.Duration {
	for _, t := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second,
		30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour} {
		if end/t <= 10 {
			return t
		}
	}
	return end / 8
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"cohortVersions": func(m map[string]int) string {
		keys := sortedKeys(m)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s: %d", k, m[k])
		}
		return strings.Join(parts, ", ")
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>coexist sim: {{.R.Scenario}} seed {{.R.Seed}}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; font-size: 13px; }
th { background: #f0f0f0; }
.bad { color: #b00; font-weight: bold; }
.ok { color: #070; font-weight: bold; }
h3 { margin-bottom: 0.2em; }
</style>
</head>
<body>
<h1>{{.R.Scenario}}, seed {{.R.Seed}}</h1>
<p>{{if .R.OK}}<span class="ok">every invariant held</span>{{else}}<span class="bad">invariants violated</span>{{end}};
trace hash <code>{{.Hash}}</code>; {{.R.Events}} events over {{.R.Virtual}} of virtual time.</p>
<h2>Calls per version over time</h2>
{{.Chart}}
<p>Dashed lines are steps (hover for what they did); red bands are fault windows.</p>
<h2>Summary</h2>
<pre>{{.Summary}}</pre>
{{if .R.Violations}}<h2>Violations</h2>
<table><tr><th>invariant</th><th>virtual time</th><th>event</th><th>seed</th><th>detail</th></tr>
{{range .R.Violations}}<tr><td class="bad">{{.Invariant}}</td><td>{{.At}}</td><td>{{.Event}}</td><td>{{.Seed}}</td><td>{{.Detail}}</td></tr>
{{end}}</table>{{end}}
{{if .R.Faults}}<h2>Fault windows</h2>
<table><tr><th>fault</th><th>what</th><th>from</th><th>until</th><th>failed calls it touched and excused</th></tr>
{{range .R.Faults}}<tr><td>{{.Kind}}</td><td>{{.What}}</td><td>{{.From}}</td><td>{{if lt .To 0}}end of run{{else}}{{.To}}{{end}}</td><td>{{if .Excuses}}{{.Excused}}{{else}}none: excuses no call{{end}}</td></tr>
{{end}}</table>{{end}}
<h2>The fleet after each step</h2>
{{range .R.Snapshots}}
<h3>{{if .Initial}}The initial fleet, at {{.Taken}}{{else}}After the step at {{.At}}, at {{.Taken}}{{end}}</h3>
{{if .Actions}}<ul>{{range .Actions}}<li>{{.}}</li>{{end}}</ul>{{end}}
<table><tr><th>version</th><th>state</th><th>clients</th></tr>
{{range .Versions}}<tr><td>{{.Ref}}</td><td>{{.State}}</td><td>{{.Clients}}</td></tr>{{end}}</table>
{{if .Containers}}<table><tr><th>container</th><th>node</th><th>holds</th><th>desired</th><th>observed (registry)</th><th>agent</th></tr>
{{range .Containers}}<tr><td>{{.ID}}</td><td>{{.Node}}</td><td>{{.Services}}</td><td>{{.Desired}}</td><td>{{.Observed}}</td><td>{{.Local}}</td></tr>{{end}}</table>
{{else}}<table><tr><th>version</th><th>observed</th><th>containers</th></tr>
{{range .Counts}}<tr><td>{{.Ref}}</td><td>{{.Observed}}</td><td>{{.N}}</td></tr>{{end}}</table>{{end}}
{{if .Nodes}}<table><tr><th>node</th><th>status (registry)</th><th>running</th></tr>
{{range .Nodes}}<tr><td>{{.ID}}</td><td>{{.Status}}</td><td>{{.Up}}</td></tr>{{end}}</table>{{end}}
<table><tr><th>cohort</th><th>clients per version</th></tr>
{{range .Cohorts}}<tr><td>{{.Name}}</td><td>{{cohortVersions .Versions}}</td></tr>{{end}}</table>
{{end}}
</body>
</html>
`))
