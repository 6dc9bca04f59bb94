package queue

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// The cron expressions of Schedule.Cron are parsed here rather than by a
// library: queue is a core package (standard library only, see
// ARCHITECTURE.md), and the widely used parser, robfig/cron/v3, has had
// no release since 2020 and open reports of ticks repeated or lost across
// daylight-saving changes. The standard five fields take about a hundred
// lines, with the time-zone rule below written and tested once.

// cronSpec is a parsed five-field cron expression: one bit per allowed
// value of each field.
type cronSpec struct {
	minute, hour, dom, month, dow uint64
	// domAny and dowAny are true when the field is '*' (or '?'): the day
	// then matches the other day field alone. When both are restricted,
	// a day matching either runs (the Vixie cron rule).
	domAny, dowAny bool
}

type cronField struct {
	name     string
	min, max int
	names    []string // names of min, min+1, ... (months and weekdays)
}

var cronFields = [5]cronField{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}},
	// 7 is Sunday too, as in most crons.
	{name: "day of week", min: 0, max: 7, names: []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}},
}

var cronDescriptors = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}

// cronSyntax is what an error about a cron expression recalls.
const cronSyntax = "five fields 'minute hour day-of-month month day-of-week', each '*', a value, a range a-b, a list a,b or a step */n or a-b/n (months JAN-DEC, weekdays SUN-SAT or 0-7), or one of @yearly, @monthly, @weekly, @daily, @hourly"

// parseCron parses a standard five-field cron expression or a
// descriptor (@daily ...). Its errors name the field and what it allows.
func parseCron(expr string) (*cronSpec, error) {
	src := strings.TrimSpace(expr)
	if d, ok := cronDescriptors[strings.ToLower(src)]; ok {
		src = d
	}
	fs := strings.Fields(src)
	if len(fs) != 5 {
		return nil, fmt.Errorf("cron expression %q has %d fields, want %s", expr, len(fs), cronSyntax)
	}
	var sets [5]uint64
	for i, f := range fs {
		set, err := parseCronField(f, cronFields[i])
		if err != nil {
			return nil, fmt.Errorf("cron expression %q: %s field %q: %v", expr, cronFields[i].name, f, err)
		}
		sets[i] = set
	}
	if sets[4]&(1<<7) != 0 { // 7 is Sunday
		sets[4] = sets[4]&^(1<<7) | 1
	}
	c := &cronSpec{minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4],
		domAny: fs[2] == "*" || fs[2] == "?", dowAny: fs[4] == "*" || fs[4] == "?"}
	if c.next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.UTC).IsZero() {
		return nil, fmt.Errorf("cron expression %q never matches a date (day of month and month never meet)", expr)
	}
	return c, nil
}

// parseCronField parses one field: a comma-separated list of '*', 'a',
// 'a-b', each with an optional '/step'.
func parseCronField(s string, f cronField) (uint64, error) {
	var set uint64
	for part := range strings.SplitSeq(s, ",") {
		rng, stepStr, hasStep := strings.Cut(part, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepStr)
			if err != nil || n < 1 || n > f.max {
				return 0, fmt.Errorf("step %q must be a number from 1 to %d", stepStr, f.max)
			}
			step = n
		}
		lo, hi := f.min, f.max
		switch {
		case rng == "*" || rng == "?":
			if f.name == "day of week" {
				hi = 6 // 7 would repeat Sunday
			}
		case rng == "":
			return 0, fmt.Errorf("empty value; allowed: %s", f.allowed())
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, err
			}
			hi = lo
			if isRange {
				if hi, err = f.value(b); err != nil {
					return 0, err
				}
				if hi < lo {
					return 0, fmt.Errorf("range %s runs backwards", rng)
				}
			} else if hasStep {
				hi = f.max // a/n: from a to the end, every n
			}
		}
		for v := lo; v <= hi; v += step {
			set |= 1 << v
		}
	}
	return set, nil
}

// value parses one number or name of f.
func (f cronField) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.min + i, nil
		}
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < f.min || v > f.max {
		return 0, fmt.Errorf("value %q is not allowed; allowed: %s", s, f.allowed())
	}
	return v, nil
}

func (f cronField) allowed() string {
	a := fmt.Sprintf("%d-%d", f.min, f.max)
	if f.names != nil {
		a += fmt.Sprintf(" or %s-%s", f.names[0], f.names[len(f.names)-1])
	}
	return a
}

func has(set uint64, v int) bool { return set&(1<<v) != 0 }

// dayMatches applies the day-of-month / day-of-week rule to a wall date.
func (c *cronSpec) dayMatches(t time.Time) bool {
	dom, dow := has(c.dom, t.Day()), has(c.dow, int(t.Weekday()))
	switch {
	case c.domAny && c.dowAny:
		return true
	case c.domAny:
		return dow
	case c.dowAny:
		return dom
	}
	return dom || dow
}

// next returns the first time after from that the expression names in
// loc, or the zero time if none comes within ten years.
//
// The search runs over wall-clock fields (a calendar without time
// zones), and each match becomes an instant in loc; an instant not after
// from is passed over. So a wall time that happens twice when the clocks
// go back runs once, at its first occurrence, and one skipped when they
// go forward runs as if the clocks had not moved yet (2:30 becomes 3:30
// when 2:00 jumps to 3:00). Every instance computes the same ticks.
func (c *cronSpec) next(from time.Time, loc *time.Location) time.Time {
	w := from.In(loc)
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), 0, 0, time.UTC).Add(time.Minute)
	limit := t.Year() + 10
	for t.Year() <= limit {
		y, m, d := t.Date()
		switch {
		case !has(c.month, int(m)):
			t = time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC)
		case !c.dayMatches(t):
			t = time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
		case !has(c.hour, t.Hour()):
			t = time.Date(y, m, d, t.Hour()+1, 0, 0, 0, time.UTC)
		case !has(c.minute, t.Minute()):
			// jump to the next allowed minute of this hour, or the next hour
			rest := c.minute >> (t.Minute() + 1) << (t.Minute() + 1)
			if rest == 0 || bits.TrailingZeros64(rest) > 59 {
				t = time.Date(y, m, d, t.Hour()+1, 0, 0, 0, time.UTC)
			} else {
				t = time.Date(y, m, d, t.Hour(), bits.TrailingZeros64(rest), 0, 0, time.UTC)
			}
		default:
			r := time.Date(y, m, d, t.Hour(), t.Minute(), 0, 0, loc)
			if r.Hour() != t.Hour() || r.Minute() != t.Minute() {
				// In a gap (spring forward): read the wall time with the
				// offset in force before the gap, so 2:30 is 3:30.
				_, before := r.Add(-12 * time.Hour).Zone()
				r = t.Add(-time.Duration(before) * time.Second).In(loc)
			}
			if r.After(from) {
				return r
			}
			t = t.Add(time.Minute)
		}
	}
	return time.Time{}
}
