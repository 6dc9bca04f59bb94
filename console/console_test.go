package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/console"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/slo"
)

const token = "Bearer s3cret"

func authorize(r *http.Request) bool { return r.Header.Get("Authorization") == token }

func newConsole(t testing.TB, o console.Options) *console.Console {
	t.Helper()
	if o.Authorize == nil && !o.InsecureLoopbackOnly {
		o.Authorize = authorize
	}
	c, err := console.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newBreaker(t testing.TB, name string) *breaker.Breaker {
	t.Helper()
	b, err := breaker.New(breaker.Options{Name: name, ConsecutiveFailures: 1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// do serves one request through h, authorized unless noAuth.
func do(t testing.TB, h http.Handler, method, target string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if form != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.Header.Set("Authorization", token)
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestNewOptions(t *testing.T) {
	for _, tc := range []struct {
		o    console.Options
		want string
	}{
		{console.Options{}, "Options.Authorize is required"},
		{console.Options{ReadOnly: true}, "Options.Authorize is required"},
		{console.Options{Authorize: authorize, InsecureLoopbackOnly: true}, "not both"},
		{console.Options{Authorize: authorize, LagAmber: -1}, "Options.LagAmber"},
	} {
		_, err := console.New(tc.o)
		if !errors.Is(err, console.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want ErrInvalid mentioning %q", tc.o, err, tc.want)
		}
	}
	if _, err := console.New(console.Options{InsecureLoopbackOnly: true}); err != nil {
		t.Errorf("InsecureLoopbackOnly alone: %v", err)
	}
}

func TestUnauthorized(t *testing.T) {
	c := newConsole(t, console.Options{})
	b := newBreaker(t, "payments")
	if err := c.AddBreaker(b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path, auth string }{
		{"GET", "/", ""}, {"GET", "/", "Bearer wrong"}, {"GET", "/breakers", ""},
		{"POST", "/breakers", ""}, {"GET", "/style.css", ""}, {"GET", "/queues", ""}, {"POST", "/queues/action", ""},
	} {
		w := do(t, c, tc.method, tc.path, url.Values{"name": {"payments"}, "action": {"force-open"}}, map[string]string{"Authorization": tc.auth})
		if w.Code != http.StatusUnauthorized || strings.Contains(w.Body.String(), "payments") {
			t.Errorf("%s %s with Authorization %q: %d %q, want 401 and no content", tc.method, tc.path, tc.auth, w.Code, w.Body)
		}
	}
	if b.State() != breaker.Closed {
		t.Errorf("an unauthorized POST changed the breaker: %v", b.State())
	}
	if w := do(t, c, "GET", "/", nil, nil); w.Code != http.StatusOK {
		t.Errorf("authorized GET /: %d", w.Code)
	}
}

func TestInsecureLoopbackOnly(t *testing.T) {
	c := newConsole(t, console.Options{InsecureLoopbackOnly: true})
	for remote, want := range map[string]int{
		"127.0.0.1:5000": 200, "[::1]:5000": 200, "127.9.9.9:1": 200,
		"192.0.2.1:5000": 401, "[2001:db8::1]:80": 401, "10.0.0.1:1": 401, "garbage": 401,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		c.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("from %s: %d, want %d", remote, w.Code, want)
		}
	}
}

// fakeCache and fakeRouter stand in for a cache.Cache and a
// dbrouter.Router: the console reads only their Stats.
type fakeCache struct{ st cache.Stats }

func (f fakeCache) Stats() cache.Stats { return f.st }

type fakeRouter struct{ st routerstats.Stats }

func (f fakeRouter) Stats() routerstats.Stats { return f.st }

// countsFail is a queue backend whose counts fail.
type countsFail struct {
	*queue.MemoryBackend
	err error
}

func (c countsFail) Counts(context.Context, string) (queue.Counts, error) {
	return queue.Counts{}, c.err
}

// row returns the overview's table row of the primitive named name.
func row(t *testing.T, body, name string) string {
	t.Helper()
	for _, line := range strings.Split(body, "\n") {
		if strings.Contains(line, "<tr class=\"row-") && strings.Contains(line, ">"+name+"<") {
			return line
		}
	}
	t.Fatalf("no row for %q in:\n%s", name, body)
	return ""
}

// wantRow is a primitive's expected state and (part of) its reason.
type wantRow struct{ name, level, reason string }

func wantRows(t *testing.T, body string, want []wantRow) {
	t.Helper()
	for _, w := range want {
		r := row(t, body, w.name)
		if !strings.Contains(r, `class="state `+w.level+`"`) || !strings.Contains(r, w.reason) {
			t.Errorf("%s: want %s with %q, got row\n%s", w.name, w.level, w.reason, r)
		}
	}
}

func TestOverviewStates(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	c := newConsole(t, console.Options{Clock: clk})
	mustAdd := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	closed := newBreaker(t, "closed-one")
	open, err := breaker.New(breaker.Options{Name: "open-one", ConsecutiveFailures: 1, OpenTimeout: 30 * time.Second, Clock: clk})
	mustAdd(err)
	open.Do(ctx, func(context.Context) error { return errors.New("boom") })
	half, err := breaker.New(breaker.Options{Name: "half-one", ConsecutiveFailures: 1, OpenTimeout: time.Second, Clock: clk})
	mustAdd(err)
	half.Do(ctx, func(context.Context) error { return errors.New("boom") })
	forced := newBreaker(t, "forced-one")
	forced.ForceOpen()
	for _, b := range []*breaker.Breaker{closed, open, half, forced} {
		mustAdd(c.AddBreaker(b))
	}
	clk.Add(2 * time.Second) // half-one may probe now; open-one opens for 28 s more
	release, err := half.Acquire()
	mustAdd(err)
	defer release(nil)

	mustAdd(c.AddCache("users", fakeCache{cache.Stats{Hits: 3, Misses: 1}}))
	mustAdd(c.AddCache("sessions", fakeCache{cache.Stats{Circuit: breaker.Open}}))

	mem := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	cl, err := queue.NewClient(queue.ClientOptions{Backend: mem})
	mustAdd(err)
	for range 2 {
		_, err := cl.Enqueue(ctx, "mail", "send", map[string]string{"to": "a@example.com"}, queue.EnqueueOptions{})
		mustAdd(err)
	}
	ls, err := mem.Fetch(ctx, queue.FetchRequest{Queue: "mail", Max: 1, Lease: time.Minute, Order: [3]queue.Priority{queue.High, queue.Default, queue.Low}})
	mustAdd(err)
	if len(ls) != 1 {
		t.Fatalf("fetched %d jobs", len(ls))
	}
	mustAdd(mem.Fail(ctx, ls[0], "smtp refused", time.Time{}, true))
	mustAdd(c.AddQueue("jobs", cl, "mail", "empty"))
	broken, err := queue.NewClient(queue.ClientOptions{Backend: countsFail{mem, errors.New("dial tcp: connection refused")}})
	mustAdd(err)
	mustAdd(c.AddQueue("broken", broken, "mail"))

	mustAdd(c.AddDBRouter("db-ok", fakeRouter{routerstats.Stats{Primary: routerstats.PrimaryStats{Up: true},
		Replicas: []routerstats.ReplicaStats{{Name: "r1", Healthy: true, LagKnown: true, LagBytes: 100}}}}))
	mustAdd(c.AddDBRouter("db-lag", fakeRouter{routerstats.Stats{Primary: routerstats.PrimaryStats{Up: true},
		Replicas: []routerstats.ReplicaStats{{Name: "r1", Healthy: true, LagKnown: true, LagBytes: 64 << 20}, {Name: "r2", Healthy: true, LagKnown: true}}}}))
	mustAdd(c.AddDBRouter("db-ejected", fakeRouter{routerstats.Stats{Primary: routerstats.PrimaryStats{Up: true},
		Replicas: []routerstats.ReplicaStats{{Name: "r1", Reason: "lag over MaxLag"}, {Name: "r2", Healthy: true}}}}))
	mustAdd(c.AddDBRouter("db-down", fakeRouter{routerstats.Stats{Primary: routerstats.PrimaryStats{
		LastError: "failed to connect to postgres://app:hunter2@db:5432/app password=hunter3 sslmode=disable"}}}))

	good, err := slo.New(slo.Options{Name: "api-availability", Target: 0.99, Window: 30 * 24 * time.Hour, Clock: clk})
	mustAdd(err)
	burning, err := slo.New(slo.Options{Name: "checkout-availability", Target: 0.99, Window: 30 * 24 * time.Hour, Clock: clk})
	mustAdd(err)
	for i := range 100 {
		good.Record(true)
		burning.Record(i%2 == 0) // 50% errors: 50x the allowed rate
	}
	mustAdd(c.AddSLO(good))
	mustAdd(c.AddSLO(burning))

	w := do(t, c, "GET", "/", nil, nil)
	if w.Code != 200 {
		t.Fatalf("GET /: %d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	wantRows(t, body, []wantRow{
		{"closed-one", "green", "closed"},
		{"open-one", "red", "open: calls rejected"},
		{"half-one", "amber", "half-open"},
		{"forced-one", "red", "forced open by hand"},
		{"users", "green", "hit ratio: 75 %"},
		{"sessions", "red", "store circuit open"},
		{"jobs / mail", "amber", "1 dead jobs"},
		{"jobs / empty", "green", "no dead jobs"},
		{"broken / mail", "red", "counting failed: dial tcp: connection refused"},
		{"db-ok", "green", "every replica healthy"},
		{"db-lag", "amber", "lagging: r1 (64.0 MiB behind)"},
		{"db-ejected", "amber", "ejected: r1 (lag over MaxLag)"},
		{"db-down", "red", "primary down: failed to connect to postgres://app:[redacted]@db:5432/app password=[redacted]"},
		{"api-availability", "green", "no alert firing"},
		{"checkout-availability", "red", "burning fast: fast-burn"},
	})
	if strings.Contains(body, "hunter") {
		t.Error("a password was rendered")
	}
	// Relative time with the absolute one in the title.
	if r := row(t, body, "open-one"); !strings.Contains(r, `title="2026-01-01T12:00:30Z">in 28 s</time>`) {
		t.Errorf("open-one's probe time: %s", r)
	}
	if !strings.Contains(body, `<html lang="en" data-refresh="5">`) || !strings.Contains(body, `<noscript><meta http-equiv="refresh" content="5"></noscript>`) ||
		!strings.Contains(body, ownScript) {
		t.Error("no reload: neither the script's data-refresh nor the meta refresh without JavaScript")
	}
	if !strings.Contains(body, `<span class="state red">red</span></h1>`) {
		t.Error("the page's worst state is not red")
	}
}

func TestDuplicateAndNil(t *testing.T) {
	c := newConsole(t, console.Options{})
	if err := c.AddBreaker(newBreaker(t, "a")); err != nil {
		t.Fatal(err)
	}
	if err := c.AddBreaker(newBreaker(t, "a")); !errors.Is(err, console.ErrDuplicate) {
		t.Errorf("second breaker a: %v", err)
	}
	for name, err := range map[string]error{
		"AddBreaker": c.AddBreaker(nil), "AddCache": c.AddCache("x", nil), "AddDBRouter": c.AddDBRouter("x", (*fakeRouter)(nil)),
		"AddSLO": c.AddSLO(nil), "AddQueue": c.AddQueue("x", nil, "q"), "AddBreakerGroup": c.AddBreakerGroup(nil), "AddSLOTracker": c.AddSLOTracker(nil),
	} {
		if !errors.Is(err, console.ErrInvalid) {
			t.Errorf("%s(nil): %v", name, err)
		}
	}
	cl, _ := queue.NewClient(queue.ClientOptions{Backend: queue.NewMemoryBackend(queue.MemoryBackendOptions{})})
	if err := c.AddQueue("x", cl); !errors.Is(err, console.ErrInvalid) {
		t.Errorf("AddQueue without queues: %v", err)
	}
}

const xss = `<script>alert(1)</script>`

func TestEscaping(t *testing.T) {
	c := newConsole(t, console.Options{})
	b := newBreaker(t, xss)
	b.ForceOpen()
	if err := c.AddBreaker(b); err != nil {
		t.Fatal(err)
	}
	if err := c.AddCache(`"><img src=x onerror=alert(1)>`, fakeCache{}); err != nil {
		t.Fatal(err)
	}
	if err := c.AddDBRouter("db", fakeRouter{routerstats.Stats{Primary: routerstats.PrimaryStats{Up: true},
		Replicas: []routerstats.ReplicaStats{{Name: xss, Reason: xss}}}}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/breakers"} {
		body := do(t, c, "GET", path, nil, nil).Body.String()
		if injected(body) || strings.Contains(body, "<img") {
			t.Errorf("%s renders markup from a name:\n%s", path, body)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s does not show the name as text:\n%s", path, body)
		}
	}
	// The name still works as a form value (escaped in the attribute).
	w := do(t, c, "POST", "/breakers", url.Values{"name": {xss}, "action": {"reset"}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if w.Code != http.StatusSeeOther || b.State() != breaker.Closed {
		t.Errorf("reset of the breaker named %q: %d, state %v", xss, w.Code, b.State())
	}
}

func TestActions(t *testing.T) {
	c := newConsole(t, console.Options{})
	b := newBreaker(t, "payments")
	if err := c.AddBreaker(b); err != nil {
		t.Fatal(err)
	}
	g, err := breaker.NewGroup(breaker.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g.Get("host-a")
	if err := c.AddBreakerGroup(g); err != nil {
		t.Fatal(err)
	}
	page := do(t, c, "GET", "/breakers", nil, nil).Body.String()
	if n := strings.Count(page, `<form method="post"`); n != 4 {
		t.Errorf("%d forms, want the 4 actions of payments (host-a is in a group):\n%s", n, page)
	}
	post := func(action string, hdr map[string]string) int {
		return do(t, c, "POST", "/breakers", url.Values{"name": {"payments"}, "action": {action}}, hdr).Code
	}
	// Refused: cross-site by Fetch metadata, or by an Origin not the host.
	for _, hdr := range []map[string]string{
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site"},
		{"Origin": "https://evil.example"},
	} {
		if code := post("force-open", hdr); code != http.StatusForbidden {
			t.Errorf("POST with %v: %d, want 403", hdr, code)
		}
	}
	if b.State() != breaker.Closed {
		t.Fatalf("a refused POST changed the breaker: %v", b.State())
	}
	for _, tc := range []struct {
		action string
		want   breaker.State
	}{
		{"force-open", breaker.ForcedOpen}, {"force-closed", breaker.ForcedClosed},
		{"metrics-only", breaker.MetricsOnly}, {"reset", breaker.Closed},
	} {
		if code := post(tc.action, map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusSeeOther || b.State() != tc.want {
			t.Errorf("%s: %d, state %v, want 303 and %v", tc.action, code, b.State(), tc.want)
		}
	}
	if code := post("explode", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusBadRequest {
		t.Errorf("unknown action: %d", code)
	}
	w := do(t, c, "POST", "/breakers", url.Values{"name": {"host-a"}, "action": {"force-open"}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if w.Code != http.StatusNotFound {
		t.Errorf("action on a group's breaker: %d, want 404", w.Code)
	}
}

func TestReadOnly(t *testing.T) {
	c := newConsole(t, console.Options{ReadOnly: true})
	b := newBreaker(t, "payments")
	if err := c.AddBreaker(b); err != nil {
		t.Fatal(err)
	}
	page := do(t, c, "GET", "/breakers", nil, nil).Body.String()
	if strings.Contains(page, "<form") || strings.Contains(page, "<button") || !strings.Contains(page, "payments") {
		t.Errorf("read-only breakers page shows actions or no breaker:\n%s", page)
	}
	w := do(t, c, "POST", "/breakers", url.Values{"name": {"payments"}, "action": {"force-open"}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
	if w.Code != http.StatusForbidden || b.State() != breaker.Closed {
		t.Errorf("read-only POST: %d, state %v", w.Code, b.State())
	}
}

// 64 goroutines render the pages while others change the breakers'
// states and add primitives, and the console samples them (every 100ms,
// and by hand); run with -race.
func TestHammer(t *testing.T) {
	c := newConsole(t, console.Options{Sample: 100 * time.Millisecond})
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var bs []*breaker.Breaker
	for i := range 8 {
		b := newBreaker(t, fmt.Sprint("b", i))
		bs = append(bs, b)
		if err := c.AddBreaker(b); err != nil {
			t.Fatal(err)
		}
	}
	stateRE := regexp.MustCompile(`class="state (green|amber|red)"`)
	var wg sync.WaitGroup
	errs := make(chan error, 128)
	for i := range 64 {
		wg.Go(func() {
			for j := range 12 {
				path := "/"
				if (i+j)%2 == 0 {
					path = "/breakers"
				}
				if j%5 == 4 {
					detail := []string{"/limiters", "/caches", "/slos", "/dbrouters", "/queues"}[(i+j)%5]
					if w := do(t, c, "GET", detail, nil, nil); w.Code != 200 {
						errs <- fmt.Errorf("%s: %d %s", detail, w.Code, w.Body)
						return
					}
					continue
				}
				w := do(t, c, "GET", path, nil, nil)
				if w.Code != 200 || len(stateRE.FindAllString(w.Body.String(), -1)) < 9 {
					errs <- fmt.Errorf("%s: %d %s", path, w.Code, w.Body)
					return
				}
			}
		})
	}
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				b := bs[(i+j)%len(bs)]
				switch j % 4 {
				case 0:
					b.ForceOpen()
				case 1:
					b.Do(context.Background(), func(context.Context) error { return errors.New("x") })
				case 2:
					do(t, c, "POST", "/breakers", url.Values{"name": {b.Name()}, "action": {"force-closed"}}, map[string]string{"Sec-Fetch-Site": "same-origin"})
				default:
					b.Reset()
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			c.AddCache(fmt.Sprint("c", i), fakeCache{})
			c.AddLimiter(fmt.Sprint("l", i), &fakeLimiter{})
			console.SampleNow(c)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestHealth(t *testing.T) {
	c := newConsole(t, console.Options{})
	h, err := health.New(health.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range []health.Check{
		{Name: "db", Kind: health.Readiness, Func: func(context.Context) error {
			return errors.New("dial postgres://app:hunter2@db:5432: refused " + xss)
		}},
		{Name: "search", Kind: health.Liveness, Optional: true, Func: func(context.Context) error { return errors.New("slow") }},
		{Name: "config", Kind: health.Startup, Func: func(context.Context) error { return nil }},
	} {
		if err := h.Add(ck); err != nil {
			t.Fatal(err)
		}
	}
	h.MarkStarted()
	if err := c.AddHealth("api", h, health.Readiness, health.Liveness, health.Startup); err != nil {
		t.Fatal(err)
	}
	if err := c.AddHealth("again", h, health.Readiness, health.Readiness); !errors.Is(err, console.ErrInvalid) {
		t.Errorf("a probe listed twice: %v", err)
	}
	body := do(t, c, "GET", "/", nil, nil).Body.String()
	wantRows(t, body, []wantRow{
		{"api / readiness", "red", "failing: db (dial postgres://app:[redacted]@db:5432: refused &lt;script&gt;"},
		{"api / liveness", "amber", "degraded: search (slow)"},
		{"api / startup", "green", "every check passes"},
	})
	if strings.Contains(body, "hunter2") || injected(body) {
		t.Errorf("a password or markup was rendered:\n%s", body)
	}
}

// The one script is the console's own file; the policy allows no other
// (no inline script, no other origin); with Refresh off there is none.
func TestScriptAndPolicy(t *testing.T) {
	c := newConsole(t, console.Options{})
	w := do(t, c, "GET", "/console.js", nil, nil)
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/javascript; charset=utf-8" || !strings.Contains(w.Body.String(), "location.reload()") {
		t.Fatalf("GET /console.js: %d %q %.80s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	csp := do(t, c, "GET", "/", nil, nil).Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self';") || strings.Contains(csp, "unsafe") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	if w := do(t, c, "GET", "/console.js", nil, map[string]string{"Authorization": ""}); w.Code != http.StatusUnauthorized {
		t.Errorf("the script without authorization: %d", w.Code)
	}
	off := newConsole(t, console.Options{Refresh: -1})
	if body := do(t, off, "GET", "/", nil, nil).Body.String(); strings.Contains(body, "<script") || strings.Contains(body, "refresh") {
		t.Errorf("Refresh off still reloads:\n%s", body)
	}
}

// ownScript is the one script element a page has (in its head).
const ownScript = `<script src="console.js" defer></script>`

// injected reports whether body has a script element other than the
// console's own: markup from a name, an error or a payload.
func injected(body string) bool {
	return strings.Contains(strings.Replace(body, ownScript, "", 1), "<script")
}
