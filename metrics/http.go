package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/httpx"
	"github.com/scalekit-go/scalekit/requestid"
)

// The route label values that are not ServeMux patterns.
const (
	// UnmatchedRoute labels requests no ServeMux pattern matched (404s,
	// 405s, the mux's redirects).
	UnmatchedRoute = "unmatched"
	// OtherRoute labels the requests of routes past HTTPOptions.MaxRoutes.
	OtherRoute = "other"
)

// HTTPOptions configures NewHTTP.
type HTTPOptions struct {
	// Registerer is where the metrics are registered: a
	// prometheus.Registry of your own. Required.
	Registerer prometheus.Registerer
	// Instance is the value of the constant label instance_name, as in
	// Options. Default: "", and the label is left out.
	Instance string
	// Name is the value of the constant label name: which server this
	// is, so that several (public, admin) can share a registry. Must be
	// valid UTF-8. Default: "http".
	Name string
	// Buckets are the classic histogram's upper bounds in seconds, for
	// scrapers that do not read native histograms. Default:
	// prometheus.DefBuckets (5ms to 10s).
	Buckets []float64
	// NativeBucketFactor is the growth factor of the native histogram's
	// buckets (NativeHistogramBucketFactor in client_golang), more than 1.
	// Default: 1.1 (at most 10% error), with at most 160 buckets.
	NativeBucketFactor float64
	// Mux is the ServeMux behind the middleware, if any. With it, a
	// request the mux did not route itself (a middleware in between
	// answered it, a 429 say, or passed the mux a copy of the request) is
	// labelled by the pattern Mux would match (Mux.Handler): the matching
	// runs again for those requests only. Default: nil, and they are
	// labelled "unmatched" (see Middleware).
	Mux *http.ServeMux
	// Route names a request's route. It runs after the handler returned.
	// Default: the ServeMux pattern that matched (r.Pattern), else the one
	// Mux would match, else "unmatched". Never the raw path, whose IDs
	// would make a series per user.
	Route func(*http.Request) string
	// MaxRoutes bounds the route label's values; later routes are
	// labelled "other". Default: 100.
	MaxRoutes int
	// Clock replaces the system clock (see package clock); nil is the
	// real time.
	Clock clock.Clock
}

// HTTP is RED middleware (rate, errors, duration): see NewHTTP. It is safe
// for concurrent use.
type HTTP struct {
	clk       clock.Clock
	route     func(*http.Request) string
	maxRoutes int
	bounds    []float64

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge

	routes sync.Map // route name -> *routeSeries
	// recent caches routes by their string's address: a ServeMux's
	// r.Pattern is the same string on every request, so a hit costs a
	// pointer comparison instead of hashing the route for routes.
	recent  [64]atomic.Pointer[routeSeries]
	nRoutes atomic.Int64
	mu      sync.Mutex // serializes making routes
}

// The method and status class label values: fixed sets, so that a client
// cannot make series.
var (
	httpMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace, "other"}
	statusClasses = []string{"1xx", "2xx", "3xx", "4xx", "5xx", "other"}
)

// routeSeries holds a route's series, made on first use.
type routeSeries struct {
	name   string
	series [10][6]atomic.Pointer[redSeries] // [method][status class]
}

type redSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
	// lastExemplar is, per classic bucket, when an exemplar was last
	// given (ns on the clock), so that each bucket gets a fresh one about
	// once a second at no cost to the requests between.
	lastExemplar []atomic.Int64
}

// NewHTTP registers the RED metrics of one HTTP server on o.Registerer
// and returns their middleware:
//
//	scalekit_http_requests_total{route,method,status_class}             counter    requests served
//	scalekit_http_request_duration_seconds{route,method,status_class}   histogram  time to serve them (native, with classic buckets)
//	scalekit_http_requests_in_flight                                    gauge      requests being served
//
// each with the constant labels name and instance_name (see Options). The
// route is the ServeMux pattern ("GET /users/{id}"), method one of the
// standard methods or "other", status_class 1xx to 5xx (or "other"). The
// duration histogram carries exemplars with the request's trace_id (from a
// W3C traceparent) and request_id, set by package requestid's middleware,
// when it ran before this one: about one per bucket and series a second.
//
// It returns an error wrapping ErrInvalid for bad options, and one
// wrapping ErrDuplicate when the registry holds these metrics with the
// same name and instance_name already.
func NewHTTP(o HTTPOptions) (*HTTP, error) {
	if o.Registerer == nil {
		return nil, fmt.Errorf("%w: HTTPOptions.Registerer is required", ErrInvalid)
	}
	if o.Name == "" {
		o.Name = "http"
	}
	if !utf8.ValidString(o.Name) || !utf8.ValidString(o.Instance) {
		return nil, fmt.Errorf("%w: HTTPOptions.Name and Instance must be valid UTF-8, got %q, %q", ErrInvalid, o.Name, o.Instance)
	}
	if o.Buckets == nil {
		o.Buckets = prometheus.DefBuckets
	}
	o.Buckets = slices.Clone(o.Buckets)
	if len(o.Buckets) == 0 || !sort.Float64sAreSorted(o.Buckets) || hasDup(o.Buckets) {
		return nil, fmt.Errorf("%w: HTTPOptions.Buckets must be at least one bound, increasing, got %v", ErrInvalid, o.Buckets)
	}
	if o.NativeBucketFactor == 0 {
		o.NativeBucketFactor = 1.1
	}
	if !(o.NativeBucketFactor > 1) {
		return nil, fmt.Errorf("%w: HTTPOptions.NativeBucketFactor must be > 1, got %v", ErrInvalid, o.NativeBucketFactor)
	}
	if o.MaxRoutes == 0 {
		o.MaxRoutes = 100
	}
	if o.MaxRoutes < 1 {
		return nil, fmt.Errorf("%w: HTTPOptions.MaxRoutes must be >= 1, got %d", ErrInvalid, o.MaxRoutes)
	}
	if o.Route == nil {
		o.Route = patternRoute(o.Mux)
	}
	constLabels := prometheus.Labels{NameLabel: o.Name}
	if o.Instance != "" {
		constLabels[InstanceLabel] = o.Instance
	}
	labels := []string{"route", "method", "status_class"}
	h := &HTTP{clk: o.Clock, route: o.Route, maxRoutes: o.MaxRoutes, bounds: o.Buckets,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name:        "scalekit_http_requests_total",
			Help:        "HTTP requests served, by ServeMux pattern, method and status class (1xx to 5xx).",
			ConstLabels: constLabels,
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:                            "scalekit_http_request_duration_seconds",
			Help:                            "Time to serve HTTP requests, by ServeMux pattern, method and status class.",
			ConstLabels:                     constLabels,
			Buckets:                         o.Buckets,
			NativeHistogramBucketFactor:     o.NativeBucketFactor,
			NativeHistogramMaxBucketNumber:  160,
			NativeHistogramMinResetDuration: time.Hour,
		}, labels),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "scalekit_http_requests_in_flight",
			Help:        "HTTP requests being served.",
			ConstLabels: constLabels,
		}),
	}
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{h.requests, h.duration, h.inFlight} {
		if err := o.Registerer.Register(c); err != nil {
			for _, d := range done {
				o.Registerer.Unregister(d)
			}
			if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
				return nil, fmt.Errorf("%w: HTTP metrics named %q (instance %q) are registered already: %v", ErrDuplicate, o.Name, o.Instance, err)
			}
			return nil, fmt.Errorf("metrics: registering the HTTP metrics: %w", err)
		}
		done = append(done, c)
	}
	return h, nil
}

func hasDup(b []float64) bool {
	for i := 1; i < len(b); i++ {
		if b[i] == b[i-1] {
			return true
		}
	}
	return false
}

// patternRoute is the default HTTPOptions.Route.
func patternRoute(mux *http.ServeMux) func(r *http.Request) string {
	return func(r *http.Request) string {
		if r.Pattern != "" {
			return r.Pattern
		}
		if mux != nil {
			if _, p := mux.Handler(r); p != "" {
				return p
			}
		}
		return UnmatchedRoute
	}
}

// Middleware counts and times every request next serves.
//
// The route is read after next returns, from the request next was given:
// a ServeMux sets r.Pattern on that request when it matches. So either
// wrap the mux itself, with nothing between that passes the mux a
// different request (r.WithContext makes a copy, whose Pattern this
// middleware never sees) or answers for it, putting such middleware,
// requestid's included, outside this one:
//
//	handler := ids.Middleware(red.Middleware(mux))
//
// or set HTTPOptions.Mux, and the middleware in between may do either:
//
//	red, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg, Mux: mux})
//	handler := ids.Middleware(red.Middleware(limits.Middleware(mux)))
//
// Wrapping each handler instead (mux.Handle(p, red.Middleware(h))) also
// works, r.Pattern being set before the handler runs, but then requests no
// pattern matched are not counted.
//
// A handler that panics before sending a status counts as 5xx; one that
// hijacks the connection without sending one (an upgrade) as 1xx, its
// duration being the connection's.
func (h *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := clock.Now(h.clk)
		h.inFlight.Inc()
		sw, ww := httpx.Get(w) // pooled: no allocation per request
		returned := false
		defer func() {
			h.inFlight.Dec()
			status := sw.Status()
			switch {
			case !returned && !sw.Wrote():
				status = http.StatusInternalServerError
			case sw.Hijacked() && !sw.Wrote():
				status = http.StatusSwitchingProtocols // an upgrade the handler answered itself
			}
			httpx.Put(sw)
			h.observe(r, status, start)
		}()
		next.ServeHTTP(ww, r)
		returned = true
	})
}

func (h *HTTP) observe(r *http.Request, status int, start time.Time) {
	now := clock.Now(h.clk)
	took := now.Sub(start).Seconds()
	s := h.series(h.routeSeries(h.route(r)), methodIndex(r.Method), classIndex(status))
	s.requests.Inc()
	b := sort.SearchFloat64s(h.bounds, took) // the classic bucket took falls in
	last := &s.lastExemplar[b]
	if t := last.Load(); now.UnixNano()-t >= int64(time.Second) {
		if ex := exemplar(r); ex != nil && last.CompareAndSwap(t, now.UnixNano()) {
			s.duration.(prometheus.ExemplarObserver).ObserveWithExemplar(took, ex)
			return
		}
	}
	s.duration.Observe(took)
}

// exemplar returns the exemplar labels of r's trace and request IDs, nil
// when it has neither. Each is left out when it would not fit in
// prometheus.ExemplarMaxRunes (a request ID may be up to 1024 bytes).
func exemplar(r *http.Request) prometheus.Labels {
	ctx := r.Context()
	id, hasID := requestid.FromContext(ctx)
	t, hasTrace := requestid.TraceFromContext(ctx)
	if !hasID && !hasTrace {
		return nil
	}
	ex := prometheus.Labels{}
	room := prometheus.ExemplarMaxRunes
	if hasTrace {
		ex["trace_id"] = t.TraceID
		room -= len("trace_id") + len(t.TraceID)
	}
	if hasID && (!hasTrace || id != t.TraceID) && len("request_id")+utf8.RuneCountInString(id) <= room {
		ex["request_id"] = id
	}
	if len(ex) == 0 {
		return nil
	}
	return ex
}

// routeSeries returns the series of route, making them on first use:
// route itself while fewer than MaxRoutes are known, "other" past that.
func (h *HTTP) routeSeries(route string) *routeSeries {
	slot := &h.recent[uintptr(unsafe.Pointer(unsafe.StringData(route)))>>4%uintptr(len(h.recent))]
	// == compares the lengths, then the addresses, and the bytes only
	// when those differ: always right, cheap when it is the same string.
	if rs := slot.Load(); rs != nil && rs.name == route {
		return rs
	}
	if rs, ok := h.routes.Load(route); ok {
		rs := rs.(*routeSeries)
		if rs.name == route {
			slot.Store(rs)
		}
		return rs
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if rs, ok := h.routes.Load(route); ok {
		return rs.(*routeSeries)
	}
	if h.nRoutes.Load() >= int64(h.maxRoutes) && route != OtherRoute {
		rs, ok := h.routes.Load(OtherRoute)
		if !ok {
			rs = &routeSeries{name: OtherRoute}
			h.routes.Store(OtherRoute, rs)
		}
		return rs.(*routeSeries)
	}
	rs := &routeSeries{name: route}
	h.routes.Store(route, rs)
	if route != OtherRoute {
		h.nRoutes.Add(1)
	}
	return rs
}

// series returns the series of a route, method and status class, making
// them on first use.
func (h *HTTP) series(rs *routeSeries, m, c int) *redSeries {
	p := &rs.series[m][c]
	if s := p.Load(); s != nil {
		return s
	}
	s := &redSeries{
		requests:     h.requests.WithLabelValues(rs.name, httpMethods[m], statusClasses[c]),
		duration:     h.duration.WithLabelValues(rs.name, httpMethods[m], statusClasses[c]),
		lastExemplar: make([]atomic.Int64, len(h.bounds)+1),
	}
	for i := range s.lastExemplar {
		s.lastExemplar[i].Store(-1 << 62) // long ago: the first request gives one
	}
	if !p.CompareAndSwap(nil, s) {
		return p.Load()
	}
	return s
}

func methodIndex(m string) int {
	for i, x := range httpMethods[:len(httpMethods)-1] {
		if m == x {
			return i
		}
	}
	return len(httpMethods) - 1
}

func classIndex(status int) int {
	if status < 100 || status > 599 {
		return len(statusClasses) - 1
	}
	return status/100 - 1
}
