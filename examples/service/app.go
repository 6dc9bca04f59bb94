package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/console"
	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/httpcache"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencypg"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/policy"
	"github.com/scalekit-go/scalekit/priority"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimitredis"
	"github.com/scalekit-go/scalekit/requestid"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/scalekittest"
	"github.com/scalekit-go/scalekit/shard"
	"github.com/scalekit-go/scalekit/shutdown"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

// Config is the service's configuration.
type Config struct {
	Addr                  string
	RedisURL, DatabaseURL string
	ReplicaURLs           []string
	Role                  string // api, worker or all
	RatePerClient         float64
	// Memory runs on the in-memory backends only, starting no servers
	// (what the service does when the binaries are missing).
	Memory     bool
	DrainDelay time.Duration
	// StatsRefresh is how often the payment totals (a materialized view)
	// are refreshed, by a periodic job. Default: every minute, on the
	// minute (cron "* * * * *").
	StatsRefresh time.Duration
	Logger       *slog.Logger
	// Ready, when set, receives the listening address once the service
	// serves (tests use it).
	Ready chan<- string
	// TracerProvider, when set, traces the service (a test's SDK provider
	// with a span recorder). Default: nil, the provider the OTEL_*
	// environment asks for (telemetry.go), none unless it asks.
	TracerProvider trace.TracerProvider
	// MeterProvider, when set, gets the primitives' Stats as
	// OpenTelemetry metrics (scalekitotel.Metrics), beside /metrics.
	// Default: nil, the provider the OTEL_* environment asks for
	// (OTEL_METRICS_EXPORTER), none unless it asks; with TracerProvider
	// set and MeterProvider not, none.
	MeterProvider metric.MeterProvider
	// NoPipeline calls the payment provider through the retry and the
	// breaker only, nested by hand, without the policy pipeline's
	// bulkhead, adaptive throttler and timeouts (wire.go, buildPayments):
	// the comparison of the load-shedding test (shed_test.go). Default:
	// false, the pipeline.
	NoPipeline bool
	// ProviderLatency is how long the fake payment provider takes per
	// charge, before chaos slows it (POST /admin/chaos?provider_slow=5).
	// Default: 5ms.
	ProviderLatency time.Duration
	// ProviderConcurrency is how many charges the provider serves at once;
	// more wait in its queue, as a real provider's worker pool does, so a
	// slower provider serves fewer per second. The pipeline's bulkhead
	// admits as many. Default: 4.
	ProviderConcurrency int
	// PurgeURL is the edge cache's address (a Varnish with the xkey
	// module, see edge.go): PUT /users/{id} purges the user's surrogate
	// key there, through a job enqueued in its transaction. Default: "",
	// no purges.
	PurgeURL string
	// ConsoleToken, when set, mounts the operations page (package
	// console) at /admin/ for requests carrying
	// "Authorization: Bearer <ConsoleToken>" (401 otherwise). Default: "",
	// no console.
	ConsoleToken string
	// Shards is how many PostgreSQL clusters (each a primary with its
	// replicas) the users and their posts are spread over, by user ID
	// (package shard; shards.go). Payments, idempotency keys and the jobs
	// not written with a user stay on the first cluster. Default: 1, one
	// cluster, no package shard; at most 8. With more and no DatabaseURL,
	// the service starts Shards clusters itself; with DatabaseURL,
	// ShardDatabases names the others.
	Shards int
	// ShardDatabases are the clusters after the first (DatabaseURL and
	// ReplicaURLs) when Shards > 1 and DatabaseURL is set: Shards-1 of
	// them. Default: none.
	ShardDatabases []Database
	// PprofAddr, when set, serves the runtime profiles (net/http/pprof)
	// on that address, which must be a loopback one (pprof.go). Default:
	// "", no profiles.
	PprofAddr string
	// DBPoolSize, when > 0, is the most connections each PostgreSQL pool
	// (a primary's, a replica's) opens, unless its URL says
	// (pool_max_conns). Default: 0, pgxpool's default (4 on 2 cores). A
	// larger pool cut the wait for a primary connection at 1,500
	// requests/s on 2 cores, but cost PostgreSQL more CPU per request
	// (more backends contending): see examples/README.md.
	DBPoolSize int
}

// Database is a PostgreSQL cluster's primary URL and its replicas' URLs.
type Database struct {
	URL         string
	ReplicaURLs []string
}

// app holds the wired primitives.
type app struct {
	cfg          Config
	log          *slog.Logger
	out          io.Writer  // Run's output: the console trace exporter prints there
	tel          *telemetry // nil: tracing off
	in           *infra
	rdb          *redis.Client
	router       *dbrouter.Router // the first cluster's when sharded
	shards       *shard.Router    // nil unless Config.Shards > 1
	clusters     []*shardCluster  // the clusters of shards, in map order
	repo         repo
	users        *cache.Cache[userCopy]
	userNS       *cache.Namespace[userCopy]
	authors      *batch.Loader[int64, Author]
	provider     *provider
	payBr        *breaker.Breaker
	payRetry     *retry.Retrier
	payBudget    *retry.Budget
	payBulkhead  *bulkhead.Bulkhead  // nil with Config.NoPipeline
	payThrottle  *throttle.Throttler // nil with Config.NoPipeline
	payTotal     *timeout.Timeout    // nil with Config.NoPipeline
	payAttempt   *timeout.Timeout    // nil with Config.NoPipeline
	payPolicy    policy.Policy       // every provider call goes through it
	jobs         *queue.Client
	backend      queue.Backend
	keys         *httpcache.Keys  // surrogate keys on the responses
	purger       httpcache.Purger // nil without Config.PurgeURL
	worker       *queue.Worker
	cron         *queue.Scheduler
	idemPG       *idempotencypg.Store
	idem         *idempotency.HTTP
	limiter      ratelimit.Limiter
	localLimiter *ratelimit.Local        // the limiter without Redis (nil with Redis)
	redisLimiter *ratelimitredis.Limiter // the limiter with Redis (nil without)
	rl           *ratelimit.HTTP
	tracker      *slo.Tracker
	health       *health.Health
	metrics      *metrics.Collector
	registry     *prometheus.Registry
	console      *console.Console // nil without Config.ConsoleToken
	// readYourWrites is the router's middleware (nil without a database).
	readYourWrites func(http.Handler) http.Handler
	ids            *requestid.HTTP // request IDs in ctx, response and logs
	red            *metrics.HTTP   // rate, errors, duration per route
	mux            *http.ServeMux  // made by wire, filled by routes
	emails         atomic.Int64
	refreshes      atomic.Int64 // payment-totals refreshes done
	ledgered       atomic.Int64 // payment.captured events the ledger subscriber handled
	// mailReject makes the mail server reject every message (POST
	// /admin/chaos?mail_reject=1): the email jobs die at once.
	mailReject atomic.Bool
	// readThrough counts user reads whose read-your-writes token was newer
	// than the cached copy, which were read from the database instead.
	readThrough atomic.Int64
	// usersChanged counts the user.changed jobs done (edge.go).
	usersChanged atomic.Int64
}

// withDefaults fills what c leaves empty and checks Role.
func (c Config) withDefaults() (Config, error) {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Role == "" {
		c.Role = "all"
	}
	if c.Role != "all" && c.Role != "api" && c.Role != "worker" {
		return c, fmt.Errorf("-role must be api, worker or all, got %q", c.Role)
	}
	if c.RatePerClient <= 0 {
		c.RatePerClient = 2000
	}
	if c.ProviderLatency <= 0 {
		c.ProviderLatency = 5 * time.Millisecond
	}
	if c.ProviderConcurrency <= 0 {
		c.ProviderConcurrency = 4
	}
	if c.Shards == 0 {
		c.Shards = 1
	}
	if c.Shards < 1 || c.Shards > maxShards {
		return c, fmt.Errorf("-shards must be 1..%d, got %d", maxShards, c.Shards)
	}
	switch {
	case c.DatabaseURL == "" && len(c.ShardDatabases) > 0:
		return c, errors.New("ShardDatabases (-shard-databases) need DatabaseURL (-database) for the first cluster")
	case c.DatabaseURL != "" && len(c.ShardDatabases) != c.Shards-1:
		return c, fmt.Errorf("-shards %d with -database needs the other %d clusters in -shard-databases, got %d", c.Shards, c.Shards-1, len(c.ShardDatabases))
	}
	for i, d := range c.ShardDatabases {
		if d.URL == "" {
			return c, fmt.Errorf("ShardDatabases[%d]: the primary URL is empty", i)
		}
	}
	return c, nil
}

// resource is something wire opened, with how to close it.
type resource struct {
	name  string
	close func(context.Context) error
}

// resources are what wire opened, in the order they were opened: what
// others depend on first (Redis, the database), so it closes last.
func (a *app) resources() []resource {
	var rs []resource
	add := func(name string, close func() error) {
		rs = append(rs, resource{name, func(context.Context) error { return close() }})
	}
	if a.tel != nil { // closes last: it flushes the spans of the others' shutdown
		rs = append(rs, resource{"telemetry", a.tel.close})
	}
	if a.rdb != nil {
		add("redis", a.rdb.Close)
	}
	switch {
	case len(a.clusters) > 0:
		for _, c := range a.clusters {
			add("db-"+c.name, c.router.Close)
		}
	case a.router != nil:
		add("db", a.router.Close)
	}
	if b, ok := a.backend.(*queuepg.Backend); ok {
		add("queue-backend", b.Close)
	}
	for _, c := range a.clusters[min(1, len(a.clusters)):] { // the first's is a.backend
		if c.backend != nil {
			add("queue-backend-"+c.name, c.backend.Close)
		}
	}
	if a.idemPG != nil {
		add("idempotency-store", a.idemPG.Close)
	}
	if a.users != nil {
		add("user-cache", a.users.Close)
	}
	if a.provider != nil {
		add("provider", func() error { a.provider.close(); return nil })
	}
	if a.console != nil { // closes first: its sampler reads the others
		add("console", a.console.Close)
	}
	return rs
}

// closeAll closes what wire opened, last opened first, without the
// coordinator (when start-up failed before it could run).
func (a *app) closeAll() {
	for _, r := range slices.Backward(a.resources()) {
		if err := r.close(context.Background()); err != nil {
			a.log.Warn("closing "+r.name, slog.Any("error", err))
		}
	}
}

// shutdownCoordinator returns the graceful shutdown with every resource
// wire opened registered, the first opened closing last; serve registers
// the HTTP server and the worker.
func (a *app) shutdownCoordinator() (*shutdown.Coordinator, error) {
	coord, err := shutdown.New(shutdown.Options{Readiness: a.health, DrainDelay: a.cfg.DrainDelay, Logger: a.log})
	if err != nil {
		return nil, err
	}
	for _, r := range a.resources() { // the first registered closes last
		coord.RegisterCloseFunc(r.name, r.close)
	}
	return coord, nil
}

// serve starts what the role asks for, the job worker and the HTTP API,
// and registers them with coord, which stops them on shutdown. It listens
// first, so nothing has started when the address is taken.
func (a *app) serve(ctx context.Context, coord *shutdown.Coordinator, out io.Writer) error {
	var ln net.Listener
	if a.cfg.Role != "worker" {
		var err error
		if ln, err = net.Listen("tcp", a.cfg.Addr); err != nil {
			return err
		}
	}
	if a.cfg.Role != "api" {
		if err := a.worker.Start(ctx); err != nil {
			if ln != nil {
				err = errors.Join(err, ln.Close())
			}
			return err
		}
		coord.RegisterServer("worker", a.worker)
		for _, c := range a.clusters {
			if c.worker == nil {
				continue
			}
			if err := c.worker.Start(ctx); err != nil {
				if ln != nil {
					err = errors.Join(err, ln.Close())
				}
				return err
			}
			coord.RegisterServer("worker-"+c.name, c.worker)
		}
		// Every worker instance runs the schedules: each tick is enqueued
		// once however many do.
		if err := a.cron.Start(ctx); err != nil {
			if ln != nil {
				err = errors.Join(err, ln.Close())
			}
			return err
		}
		coord.RegisterServer("scheduler", a.cron)
	}
	if a.cfg.PprofAddr != "" {
		psrv, paddr, err := startPprof(a.cfg.PprofAddr, a.log)
		if err != nil {
			if ln != nil {
				err = errors.Join(err, ln.Close())
			}
			return err
		}
		coord.RegisterServer("pprof", psrv)
		fmt.Fprintf(out, "profiles on http://%s/debug/pprof/\n", paddr)
	}
	if ln == nil {
		return nil
	}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server", slog.Any("error", err))
		}
	}()
	coord.RegisterServer("http", srv)
	fmt.Fprintf(out, "serving on http://%s (role %s)\n  try: curl http://%s/users/1 ; curl http://%s/posts?limit=5 ; curl http://%s/metrics\n",
		ln.Addr(), a.cfg.Role, ln.Addr(), ln.Addr(), ln.Addr())
	if a.cfg.Ready != nil {
		a.cfg.Ready <- ln.Addr().String()
	}
	return nil
}

func clientHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

func (a *app) routes() http.Handler {
	mux := a.mux
	routed := a.tel.nameSpan(mux) // the server span named by the route
	// Surrogate keys on the edge-cacheable routes (inside the mux, which
	// names the route on the request the outer middleware logs).
	mux.Handle("GET /users/{id}", a.keys.Middleware(http.HandlerFunc(a.getUser)))
	mux.HandleFunc("PUT /users/{id}", a.putUser)
	mux.Handle("GET /posts", a.keys.Middleware(http.HandlerFunc(a.listPosts)))
	mux.Handle("POST /payments", withPriority(priority.Critical, a.idem.Middleware(http.HandlerFunc(a.createPayment))))
	mux.HandleFunc("POST /emails", a.sendEmail)
	mux.HandleFunc("POST /users/{id}/welcome", a.welcomeUser)
	mux.HandleFunc("GET /jobs/{id}", a.getJob)
	mux.Handle("GET /slo", a.tracker.StatusHandler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	mux.Handle("GET /health/live", a.health.Live())
	mux.Handle("GET /health/ready", a.health.Ready())
	mux.Handle("GET /health/startup", a.health.Started())
	mux.HandleFunc("GET /admin/stats", a.stats)
	mux.HandleFunc("POST /admin/chaos", a.chaos)
	if a.console != nil { // its links are relative: it serves "/" and "/breakers" under the prefix
		mux.Handle("/admin/", http.StripPrefix("/admin", a.console)) // GET /admin/stats and POST /admin/chaos above are more specific
	}

	// Probes and metrics are neither rate-limited nor part of the SLO or
	// the RED metrics. Every response carries a request ID, and every log
	// line logged with the request's context too.
	var api http.Handler = routed
	api = a.accessLog(api)
	api = a.tracker.Middleware(api)
	api = a.rl.Middleware(api)
	api = a.red.Middleware(api) // outside the 429s: HTTPOptions.Mux names their route
	if a.readYourWrites != nil {
		api = a.readYourWrites(api)
	}
	// Outermost, with tracing: the server span (none for the probes).
	return a.tel.handler(a.ids.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isProbe(r.URL.Path) {
			mux.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		http.Error(w, "the id must be a positive integer", http.StatusBadRequest)
		return 0, false
	}
	return id, true
}

// GET /users/{id}: cache-aside over a replica read (the primary, or a
// caught-up replica, when the client carries a write token). A cached copy
// older than the client's token (a write-through overtaken by an older
// one, or a fill from a lagging replica) is not served to that client: the
// user is read from the database (a replica that has replayed the token,
// or the primary) and the fresher copy cached.
func (a *app) getUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	key := strconv.FormatInt(id, 10)
	c, info, err := a.userNS.GetInfo(r.Context(), key, func(ctx context.Context, key string) (userCopy, error) {
		return a.repo.user(ctx, id)
	})
	readThrough := false
	if err == nil && a.router != nil {
		// The client's token of the user's database (cluster).
		if tok := a.sessionToken(r.Context(), id); tok.LSN > dbrouter.LSN(c.LSN) {
			a.readThrough.Add(1)
			readThrough = true
			if c, err = a.repo.user(r.Context(), id); err == nil {
				if err := a.userNS.Set(r.Context(), key, c); err != nil {
					a.log.WarnContext(r.Context(), "cache write of a read-through copy failed", slog.Any("error", err))
				}
			}
		}
	}
	switch {
	case errors.Is(err, cache.ErrNotFound):
		// Cacheable for as long as the cache remembers the miss.
		httpcache.AddKeys(r.Context(), "user:"+key)
		userPolicy.Write(w.Header(), info, time.Now())
		http.Error(w, "no such user", http.StatusNotFound)
	case err != nil:
		a.log.ErrorContext(r.Context(), "get user", slog.Any("error", err))
		http.Error(w, "cannot load the user", http.StatusServiceUnavailable)
	default:
		a.writeUser(w, r, c, info, readThrough)
	}
}

// PUT /users/{id}: a primary write, the cache written through (which also
// voids any fill in flight, on every instance), and a read-your-writes
// token back to the client (by the router's middleware).
func (a *app) putUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var in struct{ Name, Email string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || in.Name == "" || in.Email == "" {
		http.Error(w, `send JSON {"name": ..., "email": ...}, both non-empty`, http.StatusBadRequest)
		return
	}
	c, err := a.repo.updateUser(r.Context(), id, in.Name, in.Email, a.userUpdateFor(r, id))
	if errors.Is(err, cache.ErrNotFound) {
		http.Error(w, "no such user", http.StatusNotFound)
		return
	}
	if errors.Is(err, errPrecondition) {
		http.Error(w, "the user changed: GET it again for its current ETag", http.StatusPreconditionFailed)
		return
	}
	if err != nil {
		a.log.ErrorContext(r.Context(), "put user", slog.Any("error", err))
		http.Error(w, "cannot save the user", http.StatusServiceUnavailable)
		return
	}
	// Concurrent writes of one user can Set out of order, leaving an older
	// copy cached; its LSN makes getUser read past it for the clients whose
	// token is newer.
	if err := a.userNS.Set(r.Context(), strconv.FormatInt(id, 10), c); err != nil {
		a.log.WarnContext(r.Context(), "cache write-through failed; the old value expires with its TTL", slog.Any("error", err))
	}
	w.Header().Set("Etag", userETag(c.User).String())
	writeJSON(w, http.StatusOK, c.User)
}

// GET /posts?limit=N: a page of posts, authors loaded in one batch.
func (a *app) listPosts(w http.ResponseWriter, r *http.Request) {
	limit := 20
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 200 {
			http.Error(w, "limit must be 1..200", http.StatusBadRequest)
			return
		}
		limit = n
	}
	posts, err := a.repo.posts(r.Context(), limit)
	if err != nil {
		http.Error(w, "cannot list posts", http.StatusServiceUnavailable)
		return
	}
	ids := make([]int64, len(posts))
	for i, p := range posts {
		ids[i] = p.AuthorID
	}
	authors, errs := a.authors.LoadMany(r.Context(), ids)
	for i := range posts {
		if errs[i] == nil {
			posts[i].Author = authors[i]
		}
	}
	a.writePosts(w, r, posts)
}

// withPriority puts the request's priority class in its ctx (package
// priority), for the policies that shed by class: the route's class, or a
// lower one the caller asks for in the X-Priority header ("sheddable" for
// a batch job's or a prefetch's request). A caller can lower its
// request's class, never raise it: a gateway that trusts some callers
// would set it there instead.
func withPriority(class priority.Class, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := class
		if asked, ok := priority.Parse(r.Header.Get("X-Priority")); ok && asked < class {
			c = asked
		}
		h.ServeHTTP(w, r.WithContext(priority.With(r.Context(), c)))
	})
}

// POST /payments (Idempotency-Key required): charge through the policy
// pipeline (buildPayments: the bulkhead sheds by the request's priority
// class, see withPriority), then record the payment, its idempotency record
// and its receipt job in one transaction.
func (a *app) createPayment(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID      int64 `json:"user_id"`
		AmountCents int64 `json:"amount_cents"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || in.UserID < 1 || in.AmountCents < 1 {
		http.Error(w, `send JSON {"user_id": >0, "amount_cents": >0}`, http.StatusBadRequest)
		return
	}
	var charge string
	err := a.payPolicy.Do(r.Context(), func(ctx context.Context) (err error) {
		charge, err = a.provider.charge(ctx)
		return err
	})
	switch {
	case errors.Is(err, breaker.ErrOpen):
		w.Header().Set("Retry-After", "2")
		http.Error(w, "the payment provider is unavailable (circuit open); retry with the same Idempotency-Key", http.StatusServiceUnavailable)
		return
	case errors.Is(err, bulkhead.ErrRejected), errors.Is(err, throttle.ErrThrottled):
		// Shed: the provider is saturated (the bulkhead is full, lower
		// classes first) or refusing (the throttler refuses locally).
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the payment provider is saturated, "+priority.From(r.Context()).String()+" payments are shed; retry with the same Idempotency-Key", http.StatusServiceUnavailable)
		return
	case err != nil:
		http.Error(w, "the payment provider failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	p := Payment{ID: charge, UserID: in.UserID, AmountCents: in.AmountCents, Status: "captured"}
	if a.idemPG != nil {
		resp, err := a.idemPG.InTx(r.Context(), func(ctx context.Context, tx pgx.Tx) (idempotency.Response, error) {
			if _, err := tx.Exec(ctx, `INSERT INTO payments (id, user_id, amount_cents, status) VALUES ($1, $2, $3, $4)`, p.ID, p.UserID, p.AmountCents, p.Status); err != nil {
				return idempotency.Response{}, err
			}
			if _, err := a.backend.(*queuepg.Backend).EnqueueTx(ctx, tx, "receipts", "payment:receipt", p, queue.EnqueueOptions{Metadata: requestMetadata(ctx)}); err != nil {
				return idempotency.Response{}, err
			}
			// The domain event, to every subscriber queue, in the same
			// transaction: published if and only if the payment commits.
			if _, err := a.backend.(*queuepg.Backend).PublishTx(ctx, tx, topicPaymentCaptured, p, queue.PublishOptions{ID: "payment-" + p.ID, Key: p.ID}); err != nil {
				return idempotency.Response{}, err
			}
			body, _ := json.Marshal(p)
			return idempotency.Response{Status: http.StatusCreated, Header: http.Header{"Content-Type": {"application/json"}}, Body: append(body, '\n')}, nil
		})
		if err != nil {
			a.log.ErrorContext(r.Context(), "record payment", slog.Any("error", err))
			http.Error(w, "cannot record the payment", http.StatusServiceUnavailable)
			return
		}
		resp.WriteTo(w)
		return
	}
	if err := a.repo.insertPayment(r.Context(), p); err != nil {
		http.Error(w, "cannot record the payment", http.StatusServiceUnavailable)
		return
	}
	a.jobs.Enqueue(r.Context(), "receipts", "payment:receipt", p, queue.EnqueueOptions{})
	a.jobs.Publish(r.Context(), topicPaymentCaptured, p, queue.PublishOptions{ID: "payment-" + p.ID, Key: p.ID})
	writeJSON(w, http.StatusCreated, p)
}

// requestMetadata is the job metadata queue.RequestIDClient would add
// from ctx, for an enqueue made without the Client (EnqueueTx runs no
// client middleware): the request's ID.
func requestMetadata(ctx context.Context) map[string]string {
	if id, ok := requestid.FromContext(ctx); ok && requestid.Valid(id) {
		return map[string]string{queue.RequestIDKey: id}
	}
	return nil
}

// POST /users/{id}/welcome: the user read through the cache (a miss loads
// it from a replica), a welcome email queued to their address, 202 with
// the job id. Every line logged for it, the email job's included, carries
// the request's ID.
func (a *app) welcomeUser(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	c, err := a.userNS.Get(r.Context(), strconv.FormatInt(id, 10), func(ctx context.Context, key string) (userCopy, error) {
		return a.repo.user(ctx, id)
	})
	switch {
	case errors.Is(err, cache.ErrNotFound):
		http.Error(w, "no such user", http.StatusNotFound)
		return
	case err != nil:
		a.log.ErrorContext(r.Context(), "get user", slog.Any("error", err))
		http.Error(w, "cannot load the user", http.StatusServiceUnavailable)
		return
	}
	jobID, err := a.jobs.Enqueue(r.Context(), "emails", "email:send", Email{To: c.User.Email, Subject: "Welcome, " + c.User.Name}, queue.EnqueueOptions{})
	if err != nil {
		http.Error(w, "cannot queue the email", http.StatusServiceUnavailable)
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelDebug, "welcome email queued", slog.Int64("user", id), slog.String("job_id", jobID))
	writeJSON(w, http.StatusAccepted, map[string]string{"job_id": jobID, "status_url": "/jobs/" + jobID})
}

// accessLog logs every API request once it is served (Info: method,
// route, status, duration), with its ctx: the line carries its request ID.
func (a *app) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "http request", slog.String("method", r.Method), slog.String("route", r.Pattern),
			slog.String("path", r.URL.Path), slog.Int("status", sw.status), slog.Duration("took", time.Since(start)))
	})
}

// statusWriter notes the status a handler sends. Unwrap lets
// http.ResponseController reach the server's writer (Flush, deadlines).
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// POST /emails: 202 with a job id and a status URL.
func (a *app) sendEmail(w http.ResponseWriter, r *http.Request) {
	var e Email
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&e); err != nil || e.To == "" {
		http.Error(w, `send JSON {"to": ..., "subject": ...}`, http.StatusBadRequest)
		return
	}
	id, err := a.jobs.Enqueue(r.Context(), "emails", "email:send", e, queue.EnqueueOptions{})
	if err != nil {
		http.Error(w, "cannot queue the email", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"job_id": id, "status_url": "/jobs/" + id})
}

// jobStatus is what GET /jobs/{id} serves: everything Client.Job knows.
type jobStatus struct {
	ID    string      `json:"id"`
	State queue.State `json:"state"`
	// Attempts is how many attempts started (the current one included).
	Attempts    int `json:"attempts"`
	MaxAttempts int `json:"max_attempts"`
	// Progress is null until the handler reports some.
	Progress *jobProgress `json:"progress"`
	// Output is the handler's result (JSON), null until the job is done.
	Output     json.RawMessage `json:"output"`
	LastError  string          `json:"last_error"`
	EnqueuedAt time.Time       `json:"enqueued_at"`
	StartedAt  *time.Time      `json:"started_at"`
	FinishedAt *time.Time      `json:"finished_at"`
}

type jobProgress struct {
	Percent   int       `json:"percent"`
	Message   string    `json:"message"`
	UpdatedAt time.Time `json:"updated_at"`
}

// newJobStatus turns a job's record into its status document.
func newJobStatus(m *queue.Message) jobStatus {
	st := jobStatus{ID: m.ID, State: m.State, Attempts: m.Attempt, MaxAttempts: m.MaxAttempts, LastError: m.LastError, EnqueuedAt: m.EnqueuedAt}
	if !m.Progress.UpdatedAt.IsZero() {
		st.Progress = &jobProgress{Percent: m.Progress.Percent, Message: m.Progress.Message, UpdatedAt: m.Progress.UpdatedAt}
	}
	if m.Output != nil {
		st.Output = json.RawMessage(m.Output)
	}
	if !m.StartedAt.IsZero() {
		st.StartedAt = &m.StartedAt
	}
	if !m.FinishedAt.IsZero() {
		st.FinishedAt = &m.FinishedAt
	}
	return st
}

// GET /jobs/{id}: an email job's state, attempts, progress, output, last
// error and times.
func (a *app) getJob(w http.ResponseWriter, r *http.Request) {
	m, err := a.jobs.Job(r.Context(), "emails", r.PathValue("id"))
	if errors.Is(err, queue.ErrNotFound) {
		http.Error(w, "no such job", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "cannot read the job", http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, newJobStatus(m))
}

// GET /admin/stats: a summary for the load generator.
func (a *app) stats(w http.ResponseWriter, r *http.Request) {
	cs := a.users.Stats()
	hits := cs.Hits + cs.L2Hits + cs.StaleServed
	ratio := 0.0
	if total := hits + cs.Loads; total > 0 {
		ratio = float64(hits) / float64(total)
	}
	out := map[string]any{
		"cache_hit_ratio": ratio, "cache": cs, "breaker": a.payBr.Stats().State.String(),
		"emails_sent": a.emails.Load(), "provider_fail_rate": a.provider.failRate(),
		"user_reads_past_cache_for_token": a.readThrough.Load(), "payment_totals_refreshes": a.refreshes.Load(),
		"payment_events_ledgered": a.ledgered.Load(), "provider_slowdown": a.provider.slowdown(), "mail_reject": a.mailReject.Load(),
	}
	if a.payBulkhead != nil {
		out["provider_bulkhead"] = a.payBulkhead.Stats()
		out["provider_throttle"] = a.payThrottle.Stats()
	}
	switch {
	case a.shards != nil:
		dbs := map[string]any{}
		for _, c := range a.clusters {
			dbs[c.name] = c.router.Stats()
		}
		out["dbrouter"], out["shard"] = dbs, a.shards.Stats()
	case a.router != nil:
		out["dbrouter"] = a.router.Stats()
	}
	out["user_changes_applied"] = a.usersChanged.Load()
	writeJSON(w, http.StatusOK, out)
}

// POST /admin/chaos?provider_fail=0.5 | provider_slow=5 | mail_reject=1 | stop=replica|redis | start=replica|redis
//
// provider_slow multiplies the provider's latency (1: its normal speed).
// mail_reject=1 makes the mail server reject every message with a
// permanent error naming the recipient: each email job goes to the dead
// letters at its first attempt (requeue it from the console once
// mail_reject=0).
func (a *app) chaos(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if s := q.Get("provider_slow"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || !(f >= 1 && f <= 1000) {
			http.Error(w, "provider_slow must be in [1, 1000] (1: normal speed)", http.StatusBadRequest)
			return
		}
		a.provider.setSlowdown(f)
	}
	if s := q.Get("provider_fail"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || f > 1 {
			http.Error(w, "provider_fail must be in [0, 1]", http.StatusBadRequest)
			return
		}
		a.provider.setFailRate(f)
	}
	if s := q.Get("mail_reject"); s != "" {
		if s != "0" && s != "1" {
			http.Error(w, "mail_reject must be 0 or 1", http.StatusBadRequest)
			return
		}
		a.mailReject.Store(s == "1")
	}
	for _, action := range []string{"stop", "start"} {
		target := q.Get(action)
		if target == "" {
			continue
		}
		if err := a.toggle(r.Context(), action, target); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}

func (a *app) toggle(ctx context.Context, action, target string) error {
	switch target {
	case "replica":
		if a.in.pg == nil {
			return errors.New("the service did not start the replica itself")
		}
		if action == "stop" {
			return a.in.pg.Replica.Stop(scalekittest.StopImmediate)
		}
		return a.in.pg.Replica.Start(ctx)
	case "redis":
		if a.in.redis == nil {
			return errors.New("the service did not start Redis itself")
		}
		if action == "stop" {
			return a.in.redis.Stop()
		}
		return a.in.redis.Start(ctx)
	}
	return fmt.Errorf("%s=%q: use replica or redis", action, target)
}

// provider is a local HTTP payment provider that fails a settable share
// of its charges. It serves concurrency charges at once, each taking
// latency times a settable slowdown; more wait in its queue, so a slower
// provider serves fewer charges per second (as a real one does) and,
// called without a bulkhead, makes every caller wait.
type provider struct {
	srv     *http.Server
	url     string
	client  *http.Client
	fail    atomic.Uint64 // the failing share, in millionths
	slow    atomic.Uint64 // the slowdown factor, in millionths (1e6: none)
	latency time.Duration
	slots   chan struct{} // one per charge served at once
	seq     atomic.Int64
}

func startProvider(latency time.Duration, concurrency int) (*provider, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &provider{url: "http://" + ln.Addr().String() + "/charge", latency: latency, slots: make(chan struct{}, concurrency),
		client: &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	p.slow.Store(1e6)
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serveCharge)}
	go p.srv.Serve(ln)
	return p, nil
}

// serveCharge waits for one of the provider's slots, takes its latency,
// and answers a charge ID or, for the failing share, 503.
func (p *provider) serveCharge(w http.ResponseWriter, r *http.Request) {
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	case <-r.Context().Done():
		return
	}
	t := time.NewTimer(time.Duration(float64(p.latency) * p.slowdown()))
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	if rand.Float64() < p.failRate() {
		http.Error(w, "provider overloaded", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ch_%d_%d", time.Now().UnixNano(), p.seq.Add(1))
}

func (p *provider) slowdown() float64 { return float64(p.slow.Load()) / 1e6 }

func (p *provider) setSlowdown(f float64) { p.slow.Store(uint64(f * 1e6)) }

func (p *provider) failRate() float64 {
	return float64(p.fail.Load()) / 1e6
}

func (p *provider) setFailRate(f float64) { p.fail.Store(uint64(f * 1e6)) }

func (p *provider) charge(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, nil)
	if err != nil {
		return "", err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("provider: %s", resp.Status)
	}
	return string(body), nil
}

func (p *provider) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
	p.client.CloseIdleConnections()
}
