package metrics_test

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/requestid"
)

// redServer starts a real server whose mux has a few patterns, every
// handler taking took on clk, wrapped as ids.Middleware(red.Middleware(mux)).
// With withMux, HTTPOptions.Mux is the mux.
func redServer(t testing.TB, o metrics.HTTPOptions, clk *clock.Manual, took time.Duration, withMux bool) (*httptest.Server, *prometheus.Registry) {
	t.Helper()
	mux := http.NewServeMux()
	reg := prometheus.NewPedanticRegistry()
	o.Registerer = reg
	if clk != nil {
		o.Clock = clk
	}
	if withMux {
		o.Mux = mux
	}
	red, err := metrics.NewHTTP(o)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := requestid.NewHTTP(requestid.HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	step := func(w http.ResponseWriter) {
		if clk != nil {
			clk.Add(took)
		}
	}
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		step(w)
		if r.PathValue("id") == "missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "user")
	})
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		step(w)
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		step(w)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	srv := httptest.NewServer(ids.Middleware(red.Middleware(mux)))
	t.Cleanup(srv.Close)
	return srv, reg
}

func do(t testing.TB, srv *httptest.Server, method, path string, hdr ...string) int {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Error(err) // not Fatal: the hammer calls do from its goroutines
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestHTTPSeries(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	srv, reg := redServer(t, metrics.HTTPOptions{Instance: "api-1", Buckets: []float64{0.01, 0.1, 1}}, clk, 30*time.Millisecond, false)
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/users/1", 200},
		{"GET", "/users/2", 200},
		{"GET", "/users/missing", 404},
		{"POST", "/users", 201},
		{"GET", "/fail", 503},
		{"DELETE", "/fail", 503},
		{"GET", "/nope/42", 404},  // no pattern
		{"PUT", "/users/3", 405},  // the pattern is for another method
		{"BREW", "/users/4", 405}, // a method of its own: "other"
	} {
		if got := do(t, srv, c.method, c.path); got != c.status {
			t.Fatalf("%s %s: %d, want %d", c.method, c.path, got, c.status)
		}
	}
	want := `
# HELP scalekit_http_requests_in_flight HTTP requests being served.
# TYPE scalekit_http_requests_in_flight gauge
scalekit_http_requests_in_flight{instance_name="api-1",name="http"} 0
# HELP scalekit_http_requests_total HTTP requests served, by ServeMux pattern, method and status class (1xx to 5xx).
# TYPE scalekit_http_requests_total counter
scalekit_http_requests_total{instance_name="api-1",method="DELETE",name="http",route="/fail",status_class="5xx"} 1
scalekit_http_requests_total{instance_name="api-1",method="GET",name="http",route="/fail",status_class="5xx"} 1
scalekit_http_requests_total{instance_name="api-1",method="GET",name="http",route="GET /users/{id}",status_class="2xx"} 2
scalekit_http_requests_total{instance_name="api-1",method="GET",name="http",route="GET /users/{id}",status_class="4xx"} 1
scalekit_http_requests_total{instance_name="api-1",method="GET",name="http",route="unmatched",status_class="4xx"} 1
scalekit_http_requests_total{instance_name="api-1",method="POST",name="http",route="POST /users",status_class="2xx"} 1
scalekit_http_requests_total{instance_name="api-1",method="PUT",name="http",route="unmatched",status_class="4xx"} 1
scalekit_http_requests_total{instance_name="api-1",method="other",name="http",route="unmatched",status_class="4xx"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scalekit_http_requests_total", "scalekit_http_requests_in_flight"); err != nil {
		t.Error(err)
	}
	// Handlers took 30ms each on the clock; unmatched requests took 0.
	wantHist := `
# HELP scalekit_http_request_duration_seconds Time to serve HTTP requests, by ServeMux pattern, method and status class.
# TYPE scalekit_http_request_duration_seconds histogram
scalekit_http_request_duration_seconds_bucket{instance_name="api-1",method="GET",name="http",route="GET /users/{id}",status_class="2xx",le="0.01"} 0
scalekit_http_request_duration_seconds_bucket{instance_name="api-1",method="GET",name="http",route="GET /users/{id}",status_class="2xx",le="0.1"} 2
scalekit_http_request_duration_seconds_bucket{instance_name="api-1",method="GET",name="http",route="GET /users/{id}",status_class="2xx",le="1"} 2
scalekit_http_request_duration_seconds_bucket{instance_name="api-1",method="GET",name="http",route="GET /users/{id}",status_class="2xx",le="+Inf"} 2
scalekit_http_request_duration_seconds_sum{instance_name="api-1",method="GET",name="http",route="GET /users/{id}",status_class="2xx"} 0.06
scalekit_http_request_duration_seconds_count{instance_name="api-1",method="GET",name="http",route="GET /users/{id}",status_class="2xx"} 2
scalekit_http_request_duration_seconds_bucket{instance_name="api-1",method="PUT",name="http",route="unmatched",status_class="4xx",le="0.01"} 1
scalekit_http_request_duration_seconds_bucket{instance_name="api-1",method="PUT",name="http",route="unmatched",status_class="4xx",le="0.1"} 1
scalekit_http_request_duration_seconds_bucket{instance_name="api-1",method="PUT",name="http",route="unmatched",status_class="4xx",le="1"} 1
scalekit_http_request_duration_seconds_bucket{instance_name="api-1",method="PUT",name="http",route="unmatched",status_class="4xx",le="+Inf"} 1
scalekit_http_request_duration_seconds_sum{instance_name="api-1",method="PUT",name="http",route="unmatched",status_class="4xx"} 0
scalekit_http_request_duration_seconds_count{instance_name="api-1",method="PUT",name="http",route="unmatched",status_class="4xx"} 1
`
	got := filterSeries(t, reg, "scalekit_http_request_duration_seconds", `route="GET /users/{id}",status_class="2xx"`, `method="PUT"`)
	if err := testutil.CollectAndCompare(got, strings.NewReader(wantHist)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// filterSeries is a collector of the series of family in reg whose labels
// contain one of the given strings (as name="value" pairs).
func filterSeries(t *testing.T, reg *prometheus.Registry, family string, match ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	c := &gathered{}
	for _, mf := range mfs {
		if mf.GetName() != family {
			continue
		}
		keep := &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type}
		for _, m := range mf.Metric {
			var pairs []string
			for _, l := range m.Label {
				pairs = append(pairs, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			s := strings.Join(pairs, ",")
			for _, x := range match {
				if strings.Contains(s, x) {
					keep.Metric = append(keep.Metric, m)
					break
				}
			}
		}
		c.mfs = append(c.mfs, keep)
	}
	return c
}

// gathered replays gathered families as a Collector, for CollectAndCompare.
type gathered struct{ mfs []*dto.MetricFamily }

func (g *gathered) Describe(chan<- *prometheus.Desc) {}
func (g *gathered) Collect(ch chan<- prometheus.Metric) {
	for _, mf := range g.mfs {
		for _, m := range mf.Metric {
			var names, values []string
			for _, l := range m.Label {
				names = append(names, l.GetName())
				values = append(values, l.GetValue())
			}
			d := prometheus.NewDesc(mf.GetName(), mf.GetHelp(), names, nil)
			h := m.GetHistogram()
			buckets := map[float64]uint64{}
			for _, b := range h.Bucket {
				buckets[b.GetUpperBound()] = b.GetCumulativeCount()
			}
			ch <- prometheus.MustNewConstHistogram(d, h.GetSampleCount(), h.GetSampleSum(), buckets, values...)
		}
	}
}

// TestHTTPRawPathNeverALabel sends paths full of IDs and checks that no
// label value holds any of them.
func TestHTTPRawPathNeverALabel(t *testing.T) {
	for _, withMux := range []bool{false, true} {
		t.Run(fmt.Sprint("Mux set ", withMux), func(t *testing.T) { testRawPath(t, withMux) })
	}
}

func testRawPath(t *testing.T, withMux bool) {
	srv, reg := redServer(t, metrics.HTTPOptions{}, nil, 0, withMux)
	ids := []string{"12345", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "alice@example.com", "ZZZunmatched999"}
	for _, id := range ids[:3] {
		do(t, srv, "GET", "/users/"+id)
	}
	do(t, srv, "GET", "/"+ids[3]+"/x?id="+ids[0])
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				for _, id := range ids {
					if strings.Contains(l.GetValue(), id) {
						t.Errorf("%s: label %s=%q holds the raw path's %q", mf.GetName(), l.GetName(), l.GetValue(), id)
					}
				}
				if l.GetName() == "route" {
					routes[l.GetValue()] = true
				}
			}
		}
	}
	if len(routes) != 2 || !routes["GET /users/{id}"] || !routes[metrics.UnmatchedRoute] {
		t.Errorf("routes %v, want the pattern and %q", routes, metrics.UnmatchedRoute)
	}
}

// TestHTTPRouteNeedsTheMuxRequest shows why the request-ID middleware goes
// outside: inside, the mux sees a copy of the request and sets the
// pattern on it, where the RED middleware cannot read it, unless
// HTTPOptions.Mux lets it match the request again.
func TestHTTPRouteNeedsTheMuxRequest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order func(ids *requestid.HTTP, red *metrics.HTTP, mux *http.ServeMux) http.Handler
		route string
	}{
		{"ids outside", func(ids *requestid.HTTP, red *metrics.HTTP, mux *http.ServeMux) http.Handler {
			return ids.Middleware(red.Middleware(mux))
		}, "GET /a/{x}"},
		{"ids inside: the pattern is lost", func(ids *requestid.HTTP, red *metrics.HTTP, mux *http.ServeMux) http.Handler {
			return red.Middleware(ids.Middleware(mux))
		}, metrics.UnmatchedRoute},
		{"ids inside, Mux set", func(ids *requestid.HTTP, red *metrics.HTTP, mux *http.ServeMux) http.Handler {
			return red.Middleware(ids.Middleware(mux))
		}, "GET /a/{x}"},
		{"a middleware in between answers, Mux set", func(ids *requestid.HTTP, red *metrics.HTTP, mux *http.ServeMux) http.Handler {
			return red.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})) // never calls the mux
		}, "GET /a/{x}"},
		{"per handler", func(ids *requestid.HTTP, red *metrics.HTTP, mux *http.ServeMux) http.Handler {
			inner := http.NewServeMux()
			inner.Handle("GET /a/{x}", red.Middleware(mux))
			return ids.Middleware(inner)
		}, "GET /a/{x}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			mux := http.NewServeMux()
			mux.HandleFunc("GET /a/{x}", func(http.ResponseWriter, *http.Request) {})
			o := metrics.HTTPOptions{Registerer: reg}
			if strings.Contains(tc.name, "Mux set") {
				o.Mux = mux
			}
			red, _ := metrics.NewHTTP(o)
			ids, _ := requestid.NewHTTP(requestid.HTTPOptions{})
			tc.order(ids, red, mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/a/1", nil))
			want := fmt.Sprintf(`
# HELP scalekit_http_requests_total HTTP requests served, by ServeMux pattern, method and status class (1xx to 5xx).
# TYPE scalekit_http_requests_total counter
scalekit_http_requests_total{method="GET",name="http",route=%q,status_class="2xx"} 1
`, tc.route)
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scalekit_http_requests_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestHTTPExemplars(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	srv, reg := redServer(t, metrics.HTTPOptions{Buckets: []float64{0.01, 0.1, 1}}, clk, 30*time.Millisecond, false)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	do(t, srv, "GET", "/users/1", "traceparent", tp, "X-Request-ID", "req-1")
	do(t, srv, "GET", "/users/2", "X-Request-ID", "req-2") // same second, same bucket: no new exemplar
	do(t, srv, "POST", "/users", "X-Request-ID", "req-3")
	do(t, srv, "GET", "/users/3", "X-Request-ID", strings.Repeat("x", 128)) // too long for an exemplar: none, and no exemplar slot used
	clk.Add(time.Second)
	do(t, srv, "GET", "/fail", "X-Request-ID", "req-4")
	got := map[string]map[string]string{} // route -> exemplar labels
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "scalekit_http_request_duration_seconds" {
			continue
		}
		for _, m := range mf.Metric {
			var route string
			for _, l := range m.Label {
				if l.GetName() == "route" {
					route = l.GetValue()
				}
			}
			var exs []*dto.Exemplar
			for _, b := range m.GetHistogram().Bucket {
				if b.Exemplar != nil {
					exs = append(exs, b.Exemplar)
				}
			}
			if n := len(m.GetHistogram().Exemplars); n != len(exs) {
				t.Errorf("%s: %d native exemplars, %d classic", route, n, len(exs))
			}
			if len(exs) != 1 {
				t.Errorf("%s: %d exemplars, want 1", route, len(exs))
				continue
			}
			if exs[0].GetValue() != 0.03 {
				t.Errorf("%s: exemplar value %v", route, exs[0].GetValue())
			}
			ls := map[string]string{}
			for _, l := range exs[0].Label {
				ls[l.GetName()] = l.GetValue()
			}
			got[route] = ls
		}
	}
	want := map[string]map[string]string{
		"GET /users/{id}": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "request_id": "req-1"},
		"POST /users":     {"request_id": "req-3"},
		"/fail":           {"request_id": "req-4"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("exemplars %v, want %v", got, want)
	}
}

func TestHTTPPanicCounts5xx(t *testing.T) {
	reg := prometheus.NewRegistry()
	red, _ := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg})
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	h := red.Middleware(mux)
	func() {
		defer func() { _ = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/boom", nil))
	}()
	want := `
# HELP scalekit_http_requests_in_flight HTTP requests being served.
# TYPE scalekit_http_requests_in_flight gauge
scalekit_http_requests_in_flight{name="http"} 0
# HELP scalekit_http_requests_total HTTP requests served, by ServeMux pattern, method and status class (1xx to 5xx).
# TYPE scalekit_http_requests_total counter
scalekit_http_requests_total{method="GET",name="http",route="/boom",status_class="5xx"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scalekit_http_requests_total", "scalekit_http_requests_in_flight"); err != nil {
		t.Error(err)
	}
}

func TestHTTPMaxRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	red, _ := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg, MaxRoutes: 2, Route: func(r *http.Request) string { return r.URL.Path }})
	h := red.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, p := range []string{"/a", "/b", "/c", "/d", "/a"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	want := `
# HELP scalekit_http_requests_total HTTP requests served, by ServeMux pattern, method and status class (1xx to 5xx).
# TYPE scalekit_http_requests_total counter
scalekit_http_requests_total{method="GET",name="http",route="/a",status_class="2xx"} 2
scalekit_http_requests_total{method="GET",name="http",route="/b",status_class="2xx"} 1
scalekit_http_requests_total{method="GET",name="http",route="other",status_class="2xx"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scalekit_http_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestHTTPOptionsErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, o := range []metrics.HTTPOptions{
		{},
		{Registerer: reg, Name: "\xff"},
		{Registerer: reg, Buckets: []float64{}},
		{Registerer: reg, Buckets: []float64{1, 0.5}},
		{Registerer: reg, Buckets: []float64{1, 1}},
		{Registerer: reg, NativeBucketFactor: 1},
		{Registerer: reg, MaxRoutes: -1},
	} {
		if _, err := metrics.NewHTTP(o); !errors.Is(err, metrics.ErrInvalid) {
			t.Errorf("NewHTTP(%+v) = %v, want ErrInvalid", o, err)
		}
	}
	if _, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg}); !errors.Is(err, metrics.ErrDuplicate) {
		t.Errorf("second NewHTTP on a registry: %v, want ErrDuplicate", err)
	}
	if _, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg, Name: "admin"}); err != nil {
		t.Errorf("a second server under another name: %v", err)
	}
}

// TestHTTPHammer serves many requests on many routes from many goroutines
// through a real server, scraping meanwhile.
func TestHTTPHammer(t *testing.T) {
	srv, reg := redServer(t, metrics.HTTPOptions{}, nil, 0, true)
	const goroutines, each = 8, 100
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				if _, err := reg.Gather(); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				switch i % 3 {
				case 0:
					do(t, srv, "GET", fmt.Sprintf("/users/%d", g*each+i))
				case 1:
					do(t, srv, "POST", "/users", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
				default:
					do(t, srv, "GET", fmt.Sprintf("/x/%d", i))
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	mfs, _ := reg.Gather()
	var total float64
	for _, mf := range mfs {
		if mf.GetName() == "scalekit_http_requests_total" {
			for _, m := range mf.Metric {
				total += m.GetCounter().GetValue()
			}
			if len(mf.Metric) != 3 {
				t.Errorf("%d series, want 3", len(mf.Metric))
			}
		}
	}
	if total != goroutines*each {
		t.Errorf("counted %v requests, want %d", total, goroutines*each)
	}
}

func TestRequestIDStats(t *testing.T) {
	ids, _ := requestid.NewHTTP(requestid.HTTPOptions{})
	h := ids.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for _, hdr := range [][]string{
		{"X-Request-ID", "ok-1"},
		{"X-Request-ID", "not ok"},
		{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		nil,
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if hdr != nil {
			r.Header.Set(hdr[0], hdr[1])
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddRequestID("api", ids))
	expect(t, m, "scalekit_requestid_", `
		# TYPE scalekit_requestid_replaced_total counter
		scalekit_requestid_replaced_total{instance_name="api-1",name="api"} 1
		# TYPE scalekit_requestid_requests_total counter
		scalekit_requestid_requests_total{instance_name="api-1",name="api",source="generated"} 2
		scalekit_requestid_requests_total{instance_name="api-1",name="api",source="header"} 1
		scalekit_requestid_requests_total{instance_name="api-1",name="api",source="traceparent"} 1
	`)
	if err := m.AddRequestID("api", ids); !errors.Is(err, metrics.ErrDuplicate) {
		t.Errorf("adding twice: %v, want ErrDuplicate", err)
	}
}

// Routes are counted under their own names whether the Route func returns
// the same string every time (a ServeMux pattern) or a new copy of it, from
// many goroutines at once, with more routes than the middleware's cache of
// recent routes has slots.
func TestHTTPRoutesCountedExactly(t *testing.T) {
	const routes, goroutines, each = 200, 16, 400
	names := make([]string, routes)
	for i := range names {
		names[i] = fmt.Sprintf("GET /r%d", i)
	}
	reg := prometheus.NewRegistry()
	red, err := metrics.NewHTTP(metrics.HTTPOptions{Registerer: reg, MaxRoutes: routes, Route: func(r *http.Request) string {
		var i int
		fmt.Sscanf(r.URL.Path, "/r%d", &i)
		if r.Method == "POST" { // a new string of the same bytes
			return strings.Clone(names[i])
		}
		return names[i]
	}})
	if err != nil {
		t.Fatal(err)
	}
	h := red.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	reqs := make([]*http.Request, 2*routes)
	for i := range routes {
		reqs[2*i] = httptest.NewRequest("GET", fmt.Sprintf("/r%d", i), nil)
		reqs[2*i+1] = httptest.NewRequest("POST", fmt.Sprintf("/r%d", i), nil)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			w := httptest.NewRecorder()
			for i := range each {
				h.ServeHTTP(w, reqs[(g*7+i*13)%len(reqs)])
			}
		})
	}
	wg.Wait()
	want := map[string]float64{}
	for g := range goroutines {
		for i := range each {
			r := reqs[(g*7+i*13)%len(reqs)]
			var n int
			fmt.Sscanf(r.URL.Path, "/r%d", &n)
			want[names[n]+" "+r.Method]++
		}
	}
	got := map[string]float64{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "scalekit_http_requests_total" {
			continue
		}
		for _, m := range mf.Metric {
			var route, method string
			for _, l := range m.Label {
				switch l.GetName() {
				case "route":
					route = l.GetValue()
				case "method":
					method = l.GetValue()
				}
			}
			got[route+" "+method] += m.GetCounter().GetValue()
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("counts by route and method differ: %d series, want %d", len(got), len(want))
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %v, want %v", k, got[k], v)
			}
		}
	}
}
