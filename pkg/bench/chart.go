package bench

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// The chart is hand-written SVG: six panels of grouped bars, no dependency.

// series are the bar colours, one per system.
var series = []struct {
	sys   System
	label string
	color string
}{
	{Concurrent, "this system, concurrent", "#2563eb"},
	{Serial, "this system, serial", "#f59e0b"},
	{Baseline, "broker-less HTTP baseline", "#6b7280"},
}

type bar struct {
	series  int     // index into series
	value   float64 // bar height
	whisker float64 // a second figure drawn as a tick above the bar (p99); 0: none
}

type barGroup struct {
	label string
	bars  []bar
	ideal float64 // a dashed reference level across the group; 0: none
}

type panel struct {
	title, unit string
	log         bool // logarithmic value axis
	groups      []barGroup
	note        string
}

// Panel geometry.
const (
	chartW, panelW, panelH = 980, 470, 300
	padL, padR, padT, padB = 56, 12, 34, 44
	chartTop               = 70
)

// WriteSVG draws the report's results as an SVG chart.
func (rep Report) WriteSVG(w io.Writer) error {
	rps := func(r *Result) (float64, float64) { return r.RPS, 0 }
	overhead := func(r *Result) (float64, float64) { return r.Overhead.P50, r.Overhead.P99 }
	panels := []panel{
		zeroPanel(rep.Results, "20KB", "Zero-work throughput, 20 KB JPEG", "req/s", rps, false, false),
		zeroPanel(rep.Results, "2MB", "Zero-work throughput, 2 MB JPEG", "req/s", rps, false, false),
		zeroPanel(rep.Results, "20KB", "Overhead, 20 KB: p50 bar, p99 tick", "ms (log)", overhead, true, true),
		zeroPanel(rep.Results, "2MB", "Overhead, 2 MB: p50 bar, p99 tick", "ms (log)", overhead, true, true),
		longPanel(rep.Results),
		replicaPanel(rep.Results),
	}
	rows := (len(panels) + 1) / 2
	height := chartTop + rows*(panelH+16) + 30

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="11">`+"\n", chartW, height, chartW, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="16" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", esc("visionmesh: fan-out over NATS vs a broker-less HTTP fan-out, three tasks per image"))
	sub := fmt.Sprintf("%d CPUs (%s), %s, every process on one machine; overhead = latency minus the slowest task's work", rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.GoVersion)
	fmt.Fprintf(&b, `<text x="16" y="42" fill="#444">%s</text>`+"\n", esc(sub))
	x := 16
	for _, s := range series {
		fmt.Fprintf(&b, `<rect x="%d" y="52" width="12" height="12" fill="%s"/><text x="%d" y="62">%s</text>`+"\n", x, s.color, x+16, esc(s.label))
		x += 24 + 7*len(s.label)
	}
	for i, p := range panels {
		px, py := 10+(i%2)*(panelW+20), chartTop+(i/2)*(panelH+16)
		p.draw(&b, px, py)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// zeroPanel is a zero-work panel for one image: a group per client count
// (paced cells too when paced is set), a bar per system.
func zeroPanel(rs []Result, image, title, unit string, v func(*Result) (float64, float64), log, paced bool) panel {
	p := panel{title: title, unit: unit, log: log}
	type cell struct {
		clients int
		rate    float64
	}
	var cells []cell
	for _, r := range rs {
		c := cell{r.Clients, r.Rate}
		if r.Group == GroupZero && r.Image == image && (paced || r.Rate == 0) && !slices.Contains(cells, c) {
			cells = append(cells, c)
		}
	}
	for _, c := range cells {
		g := barGroup{label: fmt.Sprintf("%d client%s", c.clients, plural(c.clients))}
		if c.rate > 0 {
			g.label = fmt.Sprintf("%d, paced %g/s", c.clients, c.rate)
		}
		for i, s := range series {
			for j := range rs {
				r := &rs[j]
				if r.Group == GroupZero && r.Image == image && r.Clients == c.clients && r.Rate == c.rate && r.System == s.sys {
					val, wh := v(r)
					g.bars = append(g.bars, bar{series: i, value: val, whisker: wh})
				}
			}
		}
		p.groups = append(p.groups, g)
	}
	return p
}

// longPanel shows the long-task latency of each system, in seconds.
func longPanel(rs []Result) panel {
	p := panel{title: "Tasks with work: latency p50 (1 client)", unit: "s"}
	g := barGroup{}
	for i, s := range series {
		for _, r := range rs {
			if r.Group == GroupLong && r.System == s.sys {
				g.label = fmt.Sprintf("three %s tasks", fmtDur(r.WorkMS))
				g.bars = append(g.bars, bar{series: i, value: r.Latency.P50 / 1000})
			}
		}
	}
	if len(g.bars) > 0 {
		p.groups = append(p.groups, g)
		p.note = "serial ≈ sum of the tasks, concurrent ≈ the slowest"
	}
	return p
}

// replicaPanel shows throughput against replicas per task, with linear
// scaling from one replica as the dashed reference.
func replicaPanel(rs []Result) panel {
	p := panel{title: "Tasks with work: throughput vs replicas per task", unit: "req/s"}
	var one float64
	for _, r := range rs {
		if r.Group != GroupReplicas {
			continue
		}
		if r.Replicas == 1 {
			one = r.RPS
		}
		p.title = fmt.Sprintf("%s tasks: throughput vs replicas per task", fmtDur(r.WorkMS))
		p.note = fmt.Sprintf("%d clients per replica, concurrency 1 per replica; dashed: linear scaling", r.Clients/max(r.Replicas, 1))
		p.groups = append(p.groups, barGroup{
			label: fmt.Sprintf("%d replica%s", r.Replicas, plural(r.Replicas)),
			bars:  []bar{{series: 0, value: r.RPS}},
			ideal: one * float64(r.Replicas),
		})
	}
	return p
}

func (p panel) draw(b *strings.Builder, x, y int) {
	fmt.Fprintf(b, `<g transform="translate(%d,%d)">`+"\n", x, y)
	fmt.Fprintf(b, `<rect x="0" y="0" width="%d" height="%d" fill="#fafafa" stroke="#e5e7eb"/>`+"\n", panelW, panelH)
	fmt.Fprintf(b, `<text x="10" y="20" font-size="13" font-weight="bold">%s</text>`+"\n", esc(p.title))
	plotW, plotH := panelW-padL-padR, panelH-padT-padB
	if len(p.groups) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d" fill="#888" text-anchor="middle">not measured in this run</text></g>`+"\n", panelW/2, panelH/2)
		return
	}
	var hi, lo float64
	lo = math.Inf(1)
	for _, g := range p.groups {
		hi = math.Max(hi, g.ideal)
		for _, br := range g.bars {
			hi = math.Max(hi, math.Max(br.value, br.whisker))
			if br.value > 0 {
				lo = math.Min(lo, br.value)
			}
		}
	}
	ax := newAxis(lo, hi, p.log)
	yOf := func(v float64) float64 { return float64(padT) + float64(plotH)*(1-ax.frac(v)) }

	// Grid and value labels.
	for _, t := range ax.ticks {
		ty := yOf(t)
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e5e7eb"/>`, padL, ty, padL+plotW, ty)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", padL-4, ty+4, num(t))
	}
	fmt.Fprintf(b, `<text x="12" y="%d" fill="#555" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`+"\n", padT+plotH/2, padT+plotH/2, esc(p.unit))
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#9ca3af"/>`+"\n", padL, padT+plotH, padL+plotW, padT+plotH)

	gw := float64(plotW) / float64(len(p.groups))
	for gi, g := range p.groups {
		gx := float64(padL) + gw*float64(gi)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", gx+gw/2, padT+plotH+16, esc(g.label))
		n := len(g.bars)
		bw := math.Min(56, (gw-16)/float64(max(n, 1)))
		x0 := gx + (gw-bw*float64(n))/2
		for i, br := range g.bars {
			bx := x0 + bw*float64(i)
			top := yOf(br.value)
			if br.value <= 0 {
				top = yOf(ax.min)
			}
			fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s %s</title></rect>`+"\n",
				bx+1, top, bw-2, float64(padT+plotH)-top, series[br.series].color, esc(series[br.series].label), num(br.value), esc(p.unit))
			if br.whisker <= 0 {
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9" fill="#111">%s</text>`+"\n", bx+bw/2, top-3, num(br.value))
				continue
			}
			// The whisker's figure above its tick, the bar's inside its top.
			wy := yOf(br.whisker)
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#111" stroke-width="1"/>`, bx+bw/2, top, bx+bw/2, wy)
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#111" stroke-width="2"/>`+"\n", bx+bw*0.25, wy, bx+bw*0.75, wy)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9" fill="#111">%s</text>`+"\n", bx+bw/2, wy-3, num(br.whisker))
			if float64(padT+plotH)-top >= 14 {
				fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="9" fill="#fff">%s</text>`+"\n", bx+bw/2, top+11, num(br.value))
			}
		}
		if g.ideal > 0 {
			iy := yOf(g.ideal)
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#111" stroke-dasharray="4 3"/>`+"\n", gx+8, iy, gx+gw-8, iy)
		}
	}
	if p.note != "" {
		fmt.Fprintf(b, `<text x="10" y="%d" fill="#555" font-size="10">%s</text>`+"\n", panelH-8, esc(p.note))
	}
	b.WriteString("</g>\n")
}

// axis maps values to [0, 1] over nice round limits.
type axis struct {
	log      bool
	min, max float64
	ticks    []float64
}

func newAxis(lo, hi float64, log bool) axis {
	if hi <= 0 {
		hi = 1
	}
	if !log {
		step := niceStep(hi * 1.12 / 5)
		a := axis{max: step * math.Ceil(hi*1.12/step)}
		for t := 0.0; t <= a.max+step/2; t += step {
			a.ticks = append(a.ticks, t)
		}
		return a
	}
	if math.IsInf(lo, 1) || lo <= 0 {
		lo = hi / 10
	}
	a := axis{log: true, min: math.Pow(10, math.Floor(math.Log10(lo))), max: math.Pow(10, math.Ceil(math.Log10(hi*1.3)))}
	for t := a.min; t <= a.max*1.001; t *= 10 {
		a.ticks = append(a.ticks, t)
	}
	return a
}

func (a axis) frac(v float64) float64 {
	if a.log {
		if v <= a.min {
			return 0
		}
		return math.Log10(v/a.min) / math.Log10(a.max/a.min)
	}
	return (v - a.min) / (a.max - a.min)
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}

func esc(s string) string { return html.EscapeString(s) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// fmtDur formats a work time given in milliseconds: "50ms", "3s".
func fmtDur(msec float64) string {
	return time.Duration(msec * float64(time.Millisecond)).String()
}
