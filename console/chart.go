package console

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// chart is an SVG line chart over the history window, drawn by the
// "chart" template: every text in it is escaped there, and it needs no
// script.
type chart struct {
	Title, Unit string
	W, H        int
	// The plot area.
	X0, Y0, PW, PH float64
	YTicks, XTicks []tick
	Lines          []svgLine
	Marks          []svgMark
	// Empty says why nothing is drawn ("" when something is).
	Empty string
}

type tick struct {
	Pos   float64
	Label string
}

type svgLine struct {
	Name, Class, Points string
	// Last is the newest value, formatted with its unit.
	Last string
}

type svgMark struct {
	X     float64
	Label string
}

// series is a chart line before it is scaled.
type series struct {
	name string
	pts  []point
}

const (
	chartW, chartH        = 640, 180
	chartLeft, chartRight = 78, 10
	chartTop, chartBottom = 10, 24
)

// newChart scales lines into the window [now-span, now]. format writes a
// value with its unit; floor0 keeps 0 on the y axis; top, when > 0, is the
// least top of the y axis (1 for a ratio).
func (v *view) newChart(title, unit string, format func(float64) string, lines []series, marks []point, top float64) chart {
	ch := chart{Title: title, Unit: unit, W: chartW, H: chartH, X0: chartLeft, Y0: chartTop,
		PW: chartW - chartLeft - chartRight, PH: chartH - chartTop - chartBottom}
	if v.span <= 0 {
		ch.Empty = "no history: the console is not started (Console.Start)"
		return ch
	}
	end := v.now.UnixNano()
	start := end - int64(v.span)
	lo, hi, n := 0.0, top, 0
	for _, l := range lines {
		for _, p := range l.pts {
			if p.t < start || math.IsNaN(p.v) || math.IsInf(p.v, 0) {
				continue
			}
			lo, hi, n = min(lo, p.v), max(hi, p.v), n+1
		}
	}
	if n == 0 {
		ch.Empty = "no samples yet"
	}
	if hi <= lo {
		hi = lo + 1
	}
	x := func(t int64) float64 { return ch.X0 + ch.PW*float64(t-start)/float64(end-start) }
	y := func(f float64) float64 { return ch.Y0 + ch.PH*(1-(f-lo)/(hi-lo)) }
	for i, f := range []float64{lo, (lo + hi) / 2, hi} {
		if i == 0 || lo != 0 || f != 0 {
			ch.YTicks = append(ch.YTicks, tick{Pos: round1(y(f)), Label: format(f)})
		}
	}
	for i := range 4 {
		t := start + int64(i)*(end-start)/3
		label := time.Unix(0, t).UTC().Format("15:04") + " UTC"
		if i == 3 {
			label = "now"
		}
		ch.XTicks = append(ch.XTicks, tick{Pos: round1(x(t)), Label: label})
	}
	var buf []byte
	for i, l := range lines {
		// Points closer than pixelsPerPoint on the x axis are averaged:
		// a line has at most PW/pixelsPerPoint points whatever History.
		buf = buf[:0]
		var sum float64
		var n, bucket int
		lastV := math.NaN()
		flush := func() {
			if n == 0 {
				return
			}
			if len(buf) > 0 {
				buf = append(buf, ' ')
			}
			buf = strconv.AppendFloat(buf, ch.X0+float64(bucket)*pixelsPerPoint, 'f', -1, 64)
			buf = append(buf, ',')
			buf = strconv.AppendFloat(buf, round1(y(sum/float64(n))), 'f', -1, 64)
			sum, n = 0, 0
		}
		for _, p := range l.pts {
			if p.t < start || p.t > end || math.IsNaN(p.v) || math.IsInf(p.v, 0) {
				continue
			}
			b := int((x(p.t) - ch.X0) / pixelsPerPoint)
			if b != bucket {
				flush()
				bucket = b
			}
			sum, n, lastV = sum+p.v, n+1, p.v
		}
		flush()
		last := "no samples"
		if !math.IsNaN(lastV) {
			last = format(lastV)
		}
		ch.Lines = append(ch.Lines, svgLine{Name: l.name, Class: lineClasses[i%len(lineClasses)], Points: string(buf), Last: last})
	}
	for _, m := range marks {
		if m.t >= start && m.t <= end {
			ch.Marks = append(ch.Marks, svgMark{X: round1(x(m.t)), Label: fmt.Sprintf("%.0f at %s", m.v, time.Unix(0, m.t).UTC().Format(time.RFC3339))})
		}
	}
	return ch
}

// pixelsPerPoint is the x distance between the points of a line.
const pixelsPerPoint = 2

var lineClasses = []string{"l0", "l1", "l2", "l3", "l4", "l5"}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// rate turns a counter's samples into its rate per second between
// consecutive ones (a counter that went down, restarted, counts 0).
func rate(pts []point) []point {
	out := make([]point, 0, len(pts))
	for i := 1; i < len(pts); i++ {
		dt := float64(pts[i].t-pts[i-1].t) / 1e9
		if dt <= 0 {
			continue
		}
		out = append(out, point{pts[i].t, max(0, pts[i].v-pts[i-1].v) / dt})
	}
	return out
}

// increments are the samples at which a counter went up, by how much.
func increments(pts []point) []point {
	var out []point
	for i := 1; i < len(pts); i++ {
		if d := pts[i].v - pts[i-1].v; d > 0 {
			out = append(out, point{pts[i].t, d})
		}
	}
	return out
}

// ratio is num's increase over num's and other's between consecutive
// samples taken together (a hit ratio from hits and misses); intervals
// with neither are left out.
func ratio(num, other []point) []point {
	var out []point
	j := 0 // other[j] is the first sample not before num[i-1]
	for i := 1; i < len(num); i++ {
		for j < len(other) && other[j].t < num[i-1].t {
			j++
		}
		// Both series are sampled together: other[j] and other[j+1] are
		// at num[i-1] and num[i] unless one missed a sample.
		if j+1 >= len(other) || other[j].t != num[i-1].t || other[j+1].t != num[i].t {
			continue
		}
		dn, do := max(0, num[i].v-num[i-1].v), max(0, other[j+1].v-other[j].v)
		if dn+do > 0 {
			out = append(out, point{num[i].t, dn / (dn + do)})
		}
	}
	return out
}

func perSecond(f float64) string { return fmt.Sprintf("%.3g/s", f) }

func count(f float64) string { return strconv.FormatFloat(math.Round(f*100)/100, 'f', -1, 64) }

func bytesF(f float64) string { return byteSize(int64(f)) }

func seconds(f float64) string { return duration(time.Duration(f * float64(time.Second))) }
