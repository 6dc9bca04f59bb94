package ratelimit

import (
	"errors"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/ratelimitx"
)

func mustPolicy(t *testing.T, ls ...Limit) Policy {
	t.Helper()
	p, err := Policy(ls).Normalize()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const sec = int64(time.Second)

func TestDecideBurstThenRate(t *testing.T) {
	p := mustPolicy(t, Limit{Rate: 10, Burst: 5}) // interval 100ms, tolerance 500ms
	tats := make([]int64, 1)
	now := 1000 * sec
	for i := 0; i < 5; i++ {
		d := Decide(now, p, tats, 1)
		if !d.Allowed || d.Remaining != 4-i {
			t.Fatalf("burst event %d: %+v, want allowed with %d remaining", i, d, 4-i)
		}
	}
	d := Decide(now, p, tats, 1)
	if d.Allowed || d.RetryAfter != 100*time.Millisecond || d.Remaining != 0 || d.ResetAfter != 500*time.Millisecond {
		t.Fatalf("6th event: %+v, want denied, retry 100ms, 0 remaining, reset 500ms", d)
	}
	if tats[0] != now+5*sec/10 {
		t.Fatalf("a denial moved the TAT to %d", tats[0]-now)
	}
	// One interval later exactly one more is admitted.
	now += sec / 10
	if d := Decide(now, p, tats, 1); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("after one interval: %+v, want allowed with 0 remaining", d)
	}
	if d := Decide(now, p, tats, 1); d.Allowed {
		t.Fatalf("second event after one interval admitted: %+v", d)
	}
}

func TestDecideSustainedRateBound(t *testing.T) {
	// Over 10 s of requests every 1ms at 10/s burst 20: admitted within
	// rate*10 + burst, and no fewer than rate*10.
	p := mustPolicy(t, Limit{Rate: 10, Burst: 20})
	tats := make([]int64, 1)
	start := 50 * sec
	admitted := 0
	for now := start; now < start+10*sec; now += int64(time.Millisecond) {
		if Decide(now, p, tats, 1).Allowed {
			admitted++
		}
	}
	if admitted > 10*10+20 || admitted < 10*10 {
		t.Fatalf("admitted %d in 10s, want in [100, 120]", admitted)
	}
	t.Logf("admitted %d events in 10s at 10/s burst 20", admitted)
}

func TestDecideNEvents(t *testing.T) {
	p := mustPolicy(t, Limit{Rate: 4, Burst: 4}) // interval 250ms
	tats := make([]int64, 1)
	now := 10 * sec
	if d := Decide(now, p, tats, 3); !d.Allowed || d.Remaining != 1 {
		t.Fatalf("n=3: %+v", d)
	}
	d := Decide(now, p, tats, 2)
	if d.Allowed || d.RetryAfter != 250*time.Millisecond || d.Remaining != 1 {
		t.Fatalf("n=2 with 1 left: %+v, want denied, retry 250ms, 1 remaining", d)
	}
}

func TestDecideMultiLimitIsAtomic(t *testing.T) {
	// 10/s burst 10 AND 15 per minute burst 15.
	p := mustPolicy(t, Limit{Name: "sec", Rate: 10}, Limit{Name: "min", Rate: 15, Period: time.Minute})
	tats := make([]int64, 2)
	now := 100 * sec
	for i := 0; i < 10; i++ {
		if d := Decide(now, p, tats, 1); !d.Allowed {
			t.Fatalf("event %d denied: %+v", i, d)
		}
	}
	d := Decide(now, p, tats, 1)
	if d.Allowed || d.Limit.Name != "sec" {
		t.Fatalf("11th event: %+v, want denied by sec", d)
	}
	minTAT := tats[1]
	// Per-second limit denies: the per-minute TAT must not move.
	Decide(now, p, tats, 1)
	if tats[1] != minTAT {
		t.Fatal("a denial by one limit consumed from another")
	}
	// After a second, 5 more fit the minute limit, then the minute limit binds.
	now += sec
	for i := 0; i < 5; i++ {
		d := Decide(now, p, tats, 1)
		if !d.Allowed {
			t.Fatalf("second 2, event %d denied: %+v", i, d)
		}
		if d.Limit.Name != "min" || d.Remaining != 4-i {
			t.Fatalf("second 2, event %d: binding %q with %d left, want min with %d", i, d.Limit.Name, d.Remaining, 4-i)
		}
	}
	d = Decide(now, p, tats, 1)
	if d.Allowed || d.Limit.Name != "min" || d.RetryAfter <= time.Second {
		t.Fatalf("16th event: %+v, want denied by min for over a second", d)
	}
}

func TestPolicyNormalize(t *testing.T) {
	p := mustPolicy(t, Limit{Rate: 5})
	if p[0].Period != time.Second || p[0].Burst != 5 || p[0].Name != "5/1s" {
		t.Fatalf("defaults: %+v", p[0])
	}
	bad := []struct {
		p    Policy
		want string
	}{
		{nil, "at least one"},
		{Policy{{Rate: 0}}, "Limits[0].Rate must be >= 1"},
		{Policy{{Rate: 1, Burst: -1}}, "Limits[0].Burst must be >= 1"},
		{Policy{{Rate: 1, Period: -time.Second}}, "Limits[0].Period must be > 0"},
		{Policy{{Rate: 1}, {Rate: 2, Period: time.Nanosecond}}, "Limits[1] allows more than one event per nanosecond"},
		{Policy{{Rate: 1, Name: "a"}, {Rate: 2, Name: "a"}}, `Limits[1].Name "a" is used twice`},
		{Policy{{Rate: 1, Period: time.Hour, Burst: 1 << 30}}, "over 100 years"},
	}
	for _, c := range bad {
		_, err := c.p.Normalize()
		if !errors.Is(err, ErrInvalid) || !contains(err.Error(), c.want) {
			t.Errorf("Normalize(%+v) = %v, want ErrInvalid saying %q", c.p, err, c.want)
		}
	}
}

func TestCheckArgs(t *testing.T) {
	p := mustPolicy(t, Limit{Rate: 10, Burst: 3}, Limit{Rate: 100, Burst: 50})
	for _, c := range []struct {
		key  string
		n    int
		want string
	}{
		{"", 1, "key must not be empty"},
		{"k", 0, "n must be >= 1"},
		{"k", 4, "smallest Burst is 3"},
	} {
		if err := ratelimitx.CheckArgs(ErrInvalid, p.MaxBurst(), c.key, c.n); !errors.Is(err, ErrInvalid) || !contains(err.Error(), c.want) {
			t.Errorf("CheckArgs(%q, %d) = %v, want %q", c.key, c.n, err, c.want)
		}
	}
	if err := ratelimitx.CheckArgs(ErrInvalid, p.MaxBurst(), "k", 3); err != nil {
		t.Fatal(err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestPolicyToleranceCapIs100Years: the cap on Burst*Interval is the 100
// years the error and the Limit.Burst doc state, not about 146 years.
func TestPolicyToleranceCapIs100Years(t *testing.T) {
	const year = 36525 * 24 * time.Hour / 100
	if _, err := (Policy{{Rate: 1, Period: 100 * year, Burst: 1}}).Normalize(); err != nil {
		t.Fatalf("a tolerance of exactly 100 years: %v, want accepted", err)
	}
	for _, l := range []Limit{
		{Rate: 1, Period: 100*year + time.Nanosecond, Burst: 1},
		{Rate: 1, Period: 120 * year, Burst: 1},
		{Rate: 10, Period: 12 * year, Burst: 100}, // 120 years
	} {
		_, err := (Policy{l}).Normalize()
		if !errors.Is(err, ErrInvalid) || !contains(err.Error(), "over 100 years") {
			t.Errorf("Normalize(%+v) = %v, want ErrInvalid saying over 100 years", l, err)
		}
	}
}

// TestGodocStatesCapAndClockClamp: the tolerance cap and Local's clamp of
// a clock that goes backwards are in the godoc, not only in code comments.
func TestGodocStatesCapAndClockClamp(t *testing.T) {
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range []string{"limit.go", "local.go", "gcra.go"} {
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	pkg, err := doc.NewFromFiles(fset, files, "github.com/scalekit-go/scalekit/ratelimit")
	if err != nil {
		t.Fatal(err)
	}
	field := func(typ, name string) string {
		for _, ty := range pkg.Types {
			if ty.Name != typ {
				continue
			}
			for _, spec := range ty.Decl.Specs {
				st := spec.(*ast.TypeSpec).Type.(*ast.StructType)
				for _, f := range st.Fields.List {
					for _, n := range f.Names {
						if n.Name == name {
							return f.Doc.Text()
						}
					}
				}
			}
		}
		t.Fatalf("no field %s.%s", typ, name)
		return ""
	}
	if d := field("Limit", "Burst"); !contains(d, "100 years") {
		t.Errorf("Limit.Burst doc does not state the 100-year cap on Burst*Interval:\n%s", d)
	}
	if d := field("LocalOptions", "Clock"); !contains(d, "backwards") {
		t.Errorf("LocalOptions.Clock doc does not say what a clock going backwards does:\n%s", d)
	}
	for _, ty := range pkg.Types {
		if ty.Name == "Local" && !contains(ty.Doc, "backwards") {
			t.Errorf("Local doc does not mention the clamp of a clock going backwards:\n%s", ty.Doc)
		}
	}
}

// referenceDecide is decide as it was before the Decision was built apart
// from the admission test (admits, advance, decision): the split must not
// change one Decision.
func referenceDecide(now int64, p Policy, iv, tats []int64, n int) Decision {
	var (
		allowed          = true
		worstRetry int64 = -1
		deny, best Decision
		bestLeft   = -1
	)
	for i := range p {
		t := iv[i]
		tau := t * int64(p[i].Burst)
		tat := max(tats[i], now)
		newTAT := tat + int64(n)*t
		allowAt := newTAT - tau
		if now < allowAt {
			allowed = false
			if retry := allowAt - now; retry > worstRetry {
				worstRetry = retry
				deny = Decision{
					Limit:      p[i],
					Remaining:  int(max(0, (now+tau-tat)/t)),
					ResetAfter: time.Duration(tat - now),
					RetryAfter: time.Duration(retry),
				}
			}
			continue
		}
		left := int((now + tau - newTAT) / t)
		if bestLeft < 0 || left < bestLeft {
			bestLeft = left
			best = Decision{Allowed: true, Limit: p[i], Remaining: left, ResetAfter: time.Duration(newTAT - now)}
		}
	}
	if !allowed {
		return deny
	}
	for i := range p {
		tats[i] = max(tats[i], now) + int64(n)*iv[i]
	}
	return best
}

// TestDecideSplitAgreesWithReference: on random policies, arrival times
// and times, decide returns what referenceDecide does and stores the same
// arrival times, and admits (the test Local runs under its shard lock)
// agrees with the Decision on every one.
func TestDecideSplitAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	periods := []time.Duration{time.Millisecond, time.Second, time.Minute, time.Hour}
	var allowed, denied int
	for range 200_000 {
		var ls []Limit
		for j := range 1 + r.IntN(4) {
			ls = append(ls, Limit{Name: fmt.Sprint(j), Rate: 1 + r.IntN(1000), Period: periods[r.IntN(len(periods))], Burst: 1 + r.IntN(20)})
		}
		p := mustPolicy(t, ls...)
		var iv, tau []int64
		for _, l := range p {
			iv = append(iv, int64(l.Interval()))
			tau = append(tau, int64(l.Interval())*int64(l.Burst))
		}
		now := 1e18 + r.Int64N(int64(time.Hour))
		tats := make([]int64, len(p))
		for i := range tats {
			if r.IntN(4) > 0 { // else 0: a key never seen
				tats[i] = now + r.Int64N(2*tau[i]) - tau[i]/2
			}
		}
		n := 1 + r.IntN(p.MaxBurst())
		wantTats := append([]int64(nil), tats...)
		wd := referenceDecide(now, p, iv, wantTats, n)
		ok := admits(now, iv, tau, tats, n)
		got := decide(now, p, iv, tats, n)
		if got != wd || ok != wd.Allowed || !slices.Equal(tats, wantTats) {
			t.Fatalf("policy %+v, n %d: decide %+v (tats %v), admits %v; reference %+v (tats %v)", p, n, got, tats, ok, wd, wantTats)
		}
		if wd.Allowed {
			allowed++
		} else {
			denied++
		}
	}
	if allowed < 10_000 || denied < 10_000 {
		t.Fatalf("%d allowed, %d denied: the cases do not cover both", allowed, denied)
	}
}
