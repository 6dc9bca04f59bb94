package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimitredis"
	"github.com/scalekit-go/scalekit/requestid"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

// everything returns a Collector with one primitive of every kind added,
// each used once. The Redis limiters point at a closed port: nothing here
// calls Redis, and Stats needs no server.
func everything(t testing.TB, o metrics.Options) *metrics.Collector {
	t.Helper()
	ctx := context.Background()
	m := newCollector(t, o)

	br := must[*breaker.Breaker](t)(breaker.New(breaker.Options{Name: "payments"}))
	br.Do(ctx, ok)
	noErr(t, m.AddBreaker(br))
	g := must[*breaker.Group](t)(breaker.NewGroup(breaker.GroupOptions{}))
	g.Do(ctx, "eu.api.example", fail)
	noErr(t, m.AddBreakerGroup(g))

	budget := must[*retry.Budget](t)(retry.NewBudget(retry.BudgetOptions{}))
	r := must[*retry.Retrier](t)(retry.New(retry.Options{Budget: budget, Backoff: retry.Constant{}}))
	r.Do(ctx, ok)
	noErr(t, m.AddRetrier("payments", r))
	noErr(t, m.AddRetryBudget("payments", budget))

	local := must[*ratelimit.Local](t)(ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{ratelimit.PerSecond(10, 10)}}))
	local.Allow(ctx, "alice")
	noErr(t, m.AddLimiter("api", local))
	conc := must[*ratelimit.Concurrency](t)(ratelimit.NewConcurrency(ratelimit.ConcurrencyOptions{Limit: 1}))
	noErr(t, m.AddConcurrency("reports", conc))
	ad := must[*ratelimit.Adaptive](t)(ratelimit.NewAdaptive(ratelimit.AdaptiveOptions{}))
	noErr(t, m.AddAdaptive("shed", ad))
	mw := must[*ratelimit.HTTP](t)(ratelimit.NewHTTP(ratelimit.HTTPOptions{Limiter: local}))
	noErr(t, m.AddRateLimitMiddleware("api", mw))

	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	rl := must[*ratelimitredis.Limiter](t)(ratelimitredis.New(ratelimitredis.Options{Client: client, Limits: ratelimit.Policy{ratelimit.PerSecond(10, 10)}}))
	noErr(t, m.AddRedisLimiter("fleet", rl))
	rc := must[*ratelimitredis.Concurrency](t)(ratelimitredis.NewConcurrency(ratelimitredis.ConcurrencyOptions{Client: client, Limit: 1}))
	t.Cleanup(func() { rc.Close() })
	noErr(t, m.AddRedisConcurrency("exports", rc))

	c := must[*cache.Cache[string]](t)(cache.New[string](cache.Options{}))
	t.Cleanup(func() { c.Close() })
	c.Get(ctx, "k", func(context.Context, string) (string, error) { return "v", nil })
	noErr(t, m.AddCache("users", c))

	l := must[*batch.Loader[int, int]](t)(batch.New(func(_ context.Context, ids []int) (map[int]int, error) { return nil, nil }, batch.Options{}))
	l.Load(ctx, 1)
	noErr(t, m.AddBatch("authors", l))

	idem := must[*idempotency.HTTP](t)(idempotency.NewHTTP(idempotency.HTTPOptions{Unscoped: true}))
	noErr(t, m.AddIdempotency("payments", idem))
	ids := must[*requestid.HTTP](t)(requestid.NewHTTP(requestid.HTTPOptions{}))
	noErr(t, m.AddRequestID("api", ids))

	s := must[*slo.SLO](t)(slo.New(slo.Options{Name: "checkout", Target: 0.999}))
	s.Record(true)
	noErr(t, m.AddSLO(s))
	tr := must[*slo.Tracker](t)(slo.NewTracker(slo.TrackerOptions{}))
	noErr(t, m.AddSLOTracker(tr))

	// Background checks, never started: the probes read "not checked yet".
	h := must[*health.Health](t)(health.New(health.Options{Interval: time.Hour}))
	noErr(t, h.Add(health.Check{Name: "postgres", Func: ok}))
	noErr(t, m.AddHealth("api", h, health.Readiness, health.Liveness, health.Startup))

	// A worker never started: Stats needs no goroutine.
	qb := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	qc := must[*queue.Client](t)(queue.NewClient(queue.ClientOptions{Backend: qb}))
	must[string](t)(qc.Enqueue(ctx, "emails", "welcome", nil, queue.EnqueueOptions{}))
	w := must[*queue.Worker](t)(queue.NewWorker(queue.WorkerOptions{Backend: qb, Queues: map[string]queue.Options{"emails": {}}}))
	noErr(t, m.AddQueueWorker("jobs", w))
	noErr(t, m.AddQueue("jobs", qc, "emails"))
	sched := must[*queue.Scheduler](t)(queue.NewScheduler(queue.SchedulerOptions{Backend: qb,
		Schedules: []queue.Schedule{{Name: "refresh", Every: time.Minute, Queue: "emails", Kind: "refresh"}}}))
	noErr(t, sched.RunDue(context.Background()))
	t.Cleanup(func() { sched.Close() })
	noErr(t, m.AddScheduler("cron", sched))
	bh := must[*bulkhead.Bulkhead](t)(bulkhead.New(bulkhead.Options{Name: "inventory"}))
	noErr(t, bh.Do(ctx, ok))
	noErr(t, m.AddBulkhead(bh))
	tm := must[*timeout.Timeout](t)(timeout.New(timeout.Options{Timeout: time.Minute}))
	noErr(t, tm.Do(ctx, ok))
	noErr(t, m.AddTimeout("inventory", tm))
	th := must[*throttle.Throttler](t)(throttle.New(throttle.Options{Name: "inventory"}))
	noErr(t, th.Do(ctx, ok))
	noErr(t, m.AddThrottler(th))
	noErr(t, m.AddRetryPacer("inventory", &retry.Pacer{}))
	sh := must[*slo.Shedder](t)(slo.NewShedder(slo.ShedderOptions{Objectives: []*slo.SLO{s}}))
	noErr(t, sh.Do(ctx, ok))
	noErr(t, m.AddSLOShedder("api", sh))

	// A router on a closed port, like the Redis limiters: its checks fail
	// at once and Stats needs no server. Open gives its pools Tracers.
	router := must[*dbrouter.Router](t)(dbrouter.Open(ctx, closedPG, []string{closedPG}, dbrouter.Options{ReplicaNames: []string{"replica-1"}}))
	t.Cleanup(func() { router.Close() })
	noErr(t, m.AddDBRouter("main", router))
	noErr(t, m.AddShard("orders", newShardRouter(t)))
	noErr(t, m.AddShardStore("orders", newShardStore(t)))
	return m
}

// closedPG is a PostgreSQL connection string for a port nothing listens on.
const closedPG = "postgres://postgres@127.0.0.1:1/app?sslmode=disable"

// needsServer are the families everything cannot collect, for want of a
// live server, each with the test that collects it from a real one.
var needsServer = map[string]string{
	"scalekit_dbrouter_replica_lag_bytes": "TestDBRouter", // left out while unmeasured
}

func TestLint(t *testing.T) {
	problems, err := testutil.CollectAndLint(everything(t, metrics.Options{Instance: "api-1"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestDescribeMatchesCollect: every metric collected has a described
// descriptor, and with every kind of primitive added every described
// family is collected.
func TestDescribeMatchesCollect(t *testing.T) {
	for _, o := range []metrics.Options{{}, {Instance: "api-1"}} {
		m := everything(t, o)
		described := map[*prometheus.Desc]bool{}
		dch := make(chan *prometheus.Desc)
		go func() { m.Describe(dch); close(dch) }()
		for d := range dch {
			if described[d] {
				t.Errorf("%v described twice", d)
			}
			described[d] = true
		}
		collected := map[*prometheus.Desc]bool{}
		mch := make(chan prometheus.Metric)
		go func() { m.Collect(mch); close(mch) }()
		for mt := range mch {
			if !described[mt.Desc()] {
				t.Errorf("collected %v, which Describe does not send", mt.Desc())
			}
			collected[mt.Desc()] = true
		}
		names := map[string]bool{}
		for d := range described {
			names[descName(d)] = true
			if !collected[d] && needsServer[descName(d)] == "" {
				t.Errorf("%v is described but never collected", d)
			}
		}
		for n := range needsServer {
			if !names[n] {
				t.Errorf("needsServer lists %s, which Describe does not send", n)
			}
		}
		// A pedantic registry checks the same, and the exposition.
		reg := prometheus.NewPedanticRegistry()
		noErr(t, reg.Register(m))
		if _, err := reg.Gather(); err != nil {
			t.Fatal(err)
		}
	}
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// descName is the name of d's family.
func descName(d *prometheus.Desc) string { return fqName.FindStringSubmatch(d.String())[1] }

// TestDocListsEveryMetric: the table in doc.go names exactly the families
// Describe sends.
func TestDocListsEveryMetric(t *testing.T) {
	var described []string
	ch := make(chan *prometheus.Desc)
	go func() { newCollector(t, metrics.Options{}).Describe(ch); close(ch) }()
	for d := range ch {
		described = append(described, descName(d))
	}
	// and the families NewHTTP registers, once a request made them all.
	reg := prometheus.NewRegistry()
	red, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	red.Middleware(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 3 {
		t.Fatalf("NewHTTP registered %d families (%v), want 3", len(mfs), err)
	}
	for _, mf := range mfs {
		described = append(described, mf.GetName())
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, line := range strings.Split(string(doc), "\n") {
		if f := strings.Fields(strings.TrimPrefix(line, "//")); strings.HasPrefix(line, "//\tscalekit_") && len(f) > 0 {
			name, _, _ := strings.Cut(f[0], "{")
			listed = append(listed, name)
		}
	}
	slices.Sort(described)
	slices.Sort(listed)
	if !slices.Equal(described, listed) {
		t.Errorf("doc.go lists\n%v\nDescribe sends\n%v", listed, described)
	}
	if len(described) < 80 {
		t.Errorf("only %d families described", len(described))
	}
}

func TestAddErrors(t *testing.T) {
	m := newCollector(t, metrics.Options{})
	br := must[*breaker.Breaker](t)(breaker.New(breaker.Options{Name: "payments"}))
	g := must[*breaker.Group](t)(breaker.NewGroup(breaker.GroupOptions{}))
	h := must[*health.Health](t)(health.New(health.Options{}))
	noErr(t, m.AddBreaker(br))
	noErr(t, m.AddBreakerGroup(g))
	noErr(t, m.AddRetrier("default", nil)) // the package-level retry.Do's Retrier
	noErr(t, m.AddHealth("api", h))
	other := must[*breaker.Breaker](t)(breaker.New(breaker.Options{Name: "payments"}))
	local := must[*ratelimit.Local](t)(ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{ratelimit.PerSecond(1, 1)}}))
	qb := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	qc := must[*queue.Client](t)(queue.NewClient(queue.ClientOptions{Backend: qb}))
	w := must[*queue.Worker](t)(queue.NewWorker(queue.WorkerOptions{Backend: qb, Queues: map[string]queue.Options{"emails": {}}}))
	noErr(t, m.AddQueueWorker("jobs", w))
	noErr(t, m.AddQueue("jobs", qc, "emails"))
	sched := must[*queue.Scheduler](t)(queue.NewScheduler(queue.SchedulerOptions{Backend: qb,
		Schedules: []queue.Schedule{{Name: "refresh", Every: time.Minute, Queue: "emails", Kind: "refresh"}}}))
	noErr(t, sched.RunDue(context.Background()))
	t.Cleanup(func() { sched.Close() })
	noErr(t, m.AddScheduler("cron", sched))
	ctx := context.Background()
	router := must[*dbrouter.Router](t)(dbrouter.Open(ctx, closedPG, []string{closedPG}, dbrouter.Options{ReplicaNames: []string{"replica-1"}}))
	t.Cleanup(func() { router.Close() })
	noErr(t, m.AddDBRouter("main", router))
	// Two replicas on one host:port, unnamed: their series would collide.
	twins := must[*dbrouter.Router](t)(dbrouter.Open(ctx, closedPG, []string{closedPG, closedPG}, dbrouter.Options{}))
	t.Cleanup(func() { twins.Close() })
	for name, c := range map[string]struct {
		err  error
		want error
	}{
		"nil breaker":          {m.AddBreaker(nil), metrics.ErrInvalid},
		"nil group":            {m.AddBreakerGroup(nil), metrics.ErrInvalid},
		"nil budget":           {m.AddRetryBudget("b", nil), metrics.ErrInvalid},
		"nil limiter":          {m.AddLimiter("l", nil), metrics.ErrInvalid},
		"nil concurrency":      {m.AddConcurrency("c", nil), metrics.ErrInvalid},
		"nil adaptive":         {m.AddAdaptive("a", nil), metrics.ErrInvalid},
		"nil middleware":       {m.AddRateLimitMiddleware("m", nil), metrics.ErrInvalid},
		"nil redis limiter":    {m.AddRedisLimiter("r", nil), metrics.ErrInvalid},
		"nil redis conc":       {m.AddRedisConcurrency("r", nil), metrics.ErrInvalid},
		"typed nil redis lim":  {m.AddRedisLimiter("r", (*ratelimitredis.Limiter)(nil)), metrics.ErrInvalid},
		"typed nil redis conc": {m.AddRedisConcurrency("r", (*ratelimitredis.Concurrency)(nil)), metrics.ErrInvalid},
		"typed nil cache":      {m.AddCache("c", (*cache.Cache[string])(nil)), metrics.ErrInvalid},
		"nil cache":            {m.AddCache("c", nil), metrics.ErrInvalid},
		"nil batch":            {m.AddBatch("b", nil), metrics.ErrInvalid},
		"nil idempotency":      {m.AddIdempotency("i", nil), metrics.ErrInvalid},
		"nil requestid":        {m.AddRequestID("r", nil), metrics.ErrInvalid},
		"nil slo":              {m.AddSLO(nil), metrics.ErrInvalid},
		"nil tracker":          {m.AddSLOTracker(nil), metrics.ErrInvalid},
		"nil health":           {m.AddHealth("h", nil), metrics.ErrInvalid},
		"bad probe":            {m.AddHealth("h", h, health.Kind(7)), metrics.ErrInvalid},
		"probe twice":          {m.AddHealth("h", h, health.Readiness, health.Readiness), metrics.ErrInvalid},
		"name not UTF-8":       {m.AddLimiter("\xff", local), metrics.ErrInvalid},
		"same breaker twice":   {m.AddBreaker(br), metrics.ErrDuplicate},
		"another breaker name": {m.AddBreaker(other), metrics.ErrDuplicate},
		"same group twice":     {m.AddBreakerGroup(g), metrics.ErrDuplicate},
		"same retrier name":    {m.AddRetrier("default", nil), metrics.ErrDuplicate},
		"same health name":     {m.AddHealth("api", h), metrics.ErrDuplicate},
		"nil worker":           {m.AddQueueWorker("w", nil), metrics.ErrInvalid},
		"nil queue client":     {m.AddQueue("q", nil, "emails"), metrics.ErrInvalid},
		"no queue":             {m.AddQueue("q", qc), metrics.ErrInvalid},
		"bad queue name":       {m.AddQueue("q", qc, "bad name"), metrics.ErrInvalid},
		"queue twice":          {m.AddQueue("q", qc, "emails", "emails"), metrics.ErrInvalid},
		"nil router":           {m.AddDBRouter("r", nil), metrics.ErrInvalid},
		"replica names clash":  {m.AddDBRouter("r", twins), metrics.ErrInvalid},
		"same worker name":     {m.AddQueueWorker("jobs", w), metrics.ErrDuplicate},
		"same queue name":      {m.AddQueue("jobs", qc, "reports"), metrics.ErrDuplicate},
		"same router name":     {m.AddDBRouter("main", router), metrics.ErrDuplicate},
	} {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", name, c.err, c.want)
		}
	}
	// Names are per kind: a limiter may share its name with a breaker.
	noErr(t, m.AddLimiter("payments", local))
	if _, err := metrics.New(metrics.Options{Instance: "\xff"}); !errors.Is(err, metrics.ErrInvalid) {
		t.Errorf("New with a non-UTF-8 Instance: %v, want ErrInvalid", err)
	}
}

// TestRegistration: primitives added after registration are scraped;
// Collectors of two instances share a registry; a second Collector with
// the same Instance is refused.
func TestRegistration(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	a := newCollector(t, metrics.Options{Instance: "a"})
	b := newCollector(t, metrics.Options{Instance: "b"})
	noErr(t, reg.Register(a))
	noErr(t, reg.Register(b))
	if err := reg.Register(newCollector(t, metrics.Options{Instance: "a"})); err == nil {
		t.Error("a second Collector with the same Instance was registered")
	}
	noErr(t, a.AddBreaker(must[*breaker.Breaker](t)(breaker.New(breaker.Options{Name: "x"}))))
	noErr(t, b.AddBreaker(must[*breaker.Breaker](t)(breaker.New(breaker.Options{Name: "x"}))))
	if n, err := testutil.GatherAndCount(reg, "scalekit_breaker_transitions_total"); err != nil || n != 2 {
		t.Fatalf("%d series, %v; want one per instance", n, err)
	}
}

// TestNoGlobalRegistry: nothing in the package touches the default
// registry.
func TestNoGlobalRegistry(t *testing.T) {
	m := everything(t, metrics.Options{})
	testutil.CollectAndCount(m)
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "scalekit_") {
			t.Errorf("%s is on the default registry", mf.GetName())
		}
	}
}

// TestBadLabelValue: a name Prometheus refuses, from a group key, makes the
// gather fail with an error naming it rather than panic in Collect.
func TestBadLabelValue(t *testing.T) {
	g := must[*breaker.Group](t)(breaker.NewGroup(breaker.GroupOptions{}))
	g.Do(context.Background(), "bad\xff", ok)
	m := newCollector(t, metrics.Options{})
	noErr(t, m.AddBreakerGroup(g))
	reg := prometheus.NewRegistry()
	noErr(t, reg.Register(m))
	if _, err := reg.Gather(); err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("Gather = %v, want an error about the label value", err)
	}
}

// TestHammer adds primitives and drives them while other goroutines
// scrape (run with -race).
func TestHammer(t *testing.T) {
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	reg := prometheus.NewRegistry()
	noErr(t, reg.Register(m))
	g := must[*breaker.Group](t)(breaker.NewGroup(breaker.GroupOptions{}))
	noErr(t, m.AddBreakerGroup(g))
	qb := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	qc := must[*queue.Client](t)(queue.NewClient(queue.ClientOptions{Backend: qb}))
	w := must[*queue.Worker](t)(queue.NewWorker(queue.WorkerOptions{Backend: qb, FetchWait: 10 * time.Millisecond,
		Queues: map[string]queue.Options{"emails": {Concurrency: 4}}}))
	noErr(t, queue.Handle(w, "send", handle))
	noErr(t, w.Start(context.Background()))
	defer w.Close()
	noErr(t, m.AddQueueWorker("mailer", w))
	noErr(t, m.AddQueue("mailer", qc, "emails"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; i < 2000 && ctx.Err() == nil; i++ {
			mode := []string{"ok", "flaky", "permanent", "panic"}[i%4]
			if _, err := qc.Enqueue(ctx, "emails", "send", job{mode}, queue.EnqueueOptions{}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for i := range 4 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				name := string(rune('a'+i)) + strings.Repeat("x", n%50)
				g.Do(ctx, name, ok)
				if n < 50 {
					b, err := breaker.New(breaker.Options{Name: "solo-" + name})
					if err == nil {
						err = m.AddBreaker(b)
					}
					if err != nil {
						t.Error(err)
						return
					}
					b.Do(ctx, fail)
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
