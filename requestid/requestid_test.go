package requestid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/slogtest"
	"time"

	"github.com/scalekit-go/scalekit/requestid"
)

const (
	validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	spanID  = "00f067aa0ba902b7"
)

// serve runs one request with headers through the middleware of o and
// returns the ID the handler saw in its context, the response header and
// the trace.
func serve(t *testing.T, m *requestid.HTTP, headers map[string]string) (ctxID, respID string, tr requestid.Trace, hasTrace bool) {
	t.Helper()
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ok bool
		if ctxID, ok = requestid.FromContext(r.Context()); !ok {
			t.Error("no ID in the context")
		}
		tr, hasTrace = requestid.TraceFromContext(r.Context())
	}))
	r := httptest.NewRequest("GET", "/", nil)
	for k, v := range headers {
		if !strings.HasPrefix(k, "+") {
			r.Header.Set(k, v)
		}
	}
	for k, v := range headers {
		if k, ok := strings.CutPrefix(k, "+"); ok {
			r.Header.Add(k, v) // "+name": one more header of that name
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return ctxID, w.Header().Get("X-Request-ID"), tr, hasTrace
}

func isGenerated(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func TestIncomingHeaderValidation(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		keep     bool // used as it came
		replaced bool // counted as replaced
	}{
		{"simple", "abc-123", true, false},
		{"all safe characters", "AZaz09._:-", true, false},
		{"uuid", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", true, false},
		{"one byte", "x", true, false},
		{"128 bytes", strings.Repeat("a", 128), true, false},
		{"129 bytes", strings.Repeat("a", 129), false, true},
		{"huge", strings.Repeat("a", 8192), false, true},
		{"empty", "", false, false},
		{"space", "abc 123", false, true},
		{"slash", "a/b", false, true},
		{"quote", `a"b`, false, true},
		{"newline injection", "a\r\nSet-Cookie: x=1", false, true},
		{"tab", "a\tb", false, true},
		{"unicode", "idé", false, true},
		{"unicode lookalike dash", "a‐b", false, true},
		{"emoji", "🙂", false, true},
		{"NUL", "a\x00b", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := requestid.NewHTTP(requestid.HTTPOptions{})
			if err != nil {
				t.Fatal(err)
			}
			hdr := map[string]string{}
			if tc.in != "" {
				hdr["X-Request-ID"] = tc.in
			}
			ctxID, respID, _, _ := serve(t, m, hdr)
			if ctxID != respID {
				t.Errorf("context ID %q, response header %q: want the same", ctxID, respID)
			}
			if tc.keep && ctxID != tc.in {
				t.Errorf("ID %q, want the incoming %q", ctxID, tc.in)
			}
			if !tc.keep && !isGenerated(ctxID) {
				t.Errorf("ID %q, want a generated one", ctxID)
			}
			st := m.Stats()
			want := requestid.HTTPStats{Accepted: 1}
			if !tc.keep {
				want = requestid.HTTPStats{Generated: 1}
			}
			if tc.replaced {
				want.Replaced = 1
			}
			if st != want {
				t.Errorf("Stats %+v, want %+v", st, want)
			}
			if requestid.Valid(tc.in) != tc.keep {
				t.Errorf("Valid(%q) = %v, want %v", tc.in, !tc.keep, tc.keep)
			}
		})
	}
}

func TestMaxLengthAndHeaderOptions(t *testing.T) {
	m, err := requestid.NewHTTP(requestid.HTTPOptions{Header: "x-correlation-id", MaxLength: 4})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for in, keep := range map[string]bool{"abcd": true, "abcde": false} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Correlation-Id", in)
		r.Header.Set("X-Request-ID", "ignored")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		got := w.Header().Get("X-Correlation-ID")
		if (got == in) != keep || w.Header().Get("X-Request-ID") != "" {
			t.Errorf("incoming %q: response %v, keep=%v", in, w.Header(), keep)
		}
	}
	for _, o := range []requestid.HTTPOptions{{MaxLength: -1}, {MaxLength: 1025}, {Header: "X Request"}, {Header: "a:b"}} {
		if _, err := requestid.NewHTTP(o); !errors.Is(err, requestid.ErrInvalid) {
			t.Errorf("NewHTTP(%+v) = %v, want ErrInvalid", o, err)
		}
	}
}

func TestIDSources(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hdr     map[string]string
		want    string // "" means generated
		trace   bool
		stats   requestid.HTTPStats
		comment string
	}{
		{"own ID wins over traceparent", map[string]string{"X-Request-ID": "mine", "traceparent": validTP}, "mine", true, requestid.HTTPStats{Accepted: 1}, ""},
		{"traceparent", map[string]string{"traceparent": validTP}, traceID, true, requestid.HTTPStats{FromTraceparent: 1}, ""},
		{"bad own ID replaced by traceparent", map[string]string{"X-Request-ID": "a b", "traceparent": validTP}, traceID, true, requestid.HTTPStats{FromTraceparent: 1, Replaced: 1}, ""},
		{"invalid traceparent ignored", map[string]string{"traceparent": strings.ToUpper(validTP)}, "", false, requestid.HTTPStats{Generated: 1}, ""},
		{"nothing", nil, "", false, requestid.HTTPStats{Generated: 1}, ""},
		{"two traceparents ignored", map[string]string{"traceparent": validTP, "+traceparent": validTP}, "", false, requestid.HTTPStats{Generated: 1}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := requestid.NewHTTP(requestid.HTTPOptions{})
			id, resp, tr, has := serve(t, m, tc.hdr)
			if (tc.want == "" && !isGenerated(id)) || (tc.want != "" && id != tc.want) || resp != id {
				t.Errorf("ID %q, response %q, want %q", id, resp, tc.want)
			}
			if has != tc.trace || (has && (tr.TraceID != traceID || tr.SpanID != spanID || !tr.Sampled())) {
				t.Errorf("trace %+v %v, want %v", tr, has, tc.trace)
			}
			if st := m.Stats(); st != tc.stats {
				t.Errorf("Stats %+v, want %+v", st, tc.stats)
			}
		})
	}
}

func TestParseTraceparent(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		flags    byte
	}{
		{"valid", validTP, true, 1},
		{"not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, 0},
		{"other flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", true, 9},
		{"empty", "", false, 0},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, 0},
		{"version not hex", "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, 0},
		{"version uppercase", "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, 0},
		{"version 00 with more fields", validTP + "-what", false, 0},
		{"version 00 trailing byte", validTP + "0", false, 0},
		{"later version", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true, 1},
		{"later version with more fields", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds", true, 1},
		{"later version without dash after flags", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.", false, 0},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", false, 0},
		{"zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false, 0},
		{"uppercase trace id", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false, 0},
		{"uppercase parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01", false, 0},
		{"uppercase flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A", false, 0},
		{"short trace id", "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false, 0},
		{"long trace id", "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01", false, 0},
		{"short parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01", false, 0},
		{"long parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01", false, 0},
		{"short flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", false, 0},
		{"long flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-011", false, 0},
		{"wrong separator", "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, 0},
		{"non-hex in trace id", "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false, 0},
		{"leading space", " " + validTP[:54], false, 0},
		{"unicode", "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, ok := requestid.ParseTraceparent(tc.in)
			if ok != tc.ok {
				t.Fatalf("ParseTraceparent(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if !ok {
				if tr != (requestid.Trace{}) {
					t.Errorf("failed parse returned %+v", tr)
				}
				return
			}
			if tr.TraceID != traceID || tr.SpanID != spanID || tr.Flags != tc.flags {
				t.Errorf("got %+v", tr)
			}
		})
	}
}

func TestGeneratedIDsUniqueUnderConcurrency(t *testing.T) {
	m, _ := requestid.NewHTTP(requestid.HTTPOptions{})
	var mu sync.Mutex
	seen := map[string]bool{}
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := requestid.FromContext(r.Context())
		if !isGenerated(id) {
			t.Errorf("bad ID %q", id)
		}
		mu.Lock()
		if seen[id] {
			t.Errorf("ID %q generated twice", id)
		}
		seen[id] = true
		mu.Unlock()
	}))
	const goroutines, each = 16, 500
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			}
		})
	}
	wg.Wait()
	if len(seen) != goroutines*each || m.Stats().Generated != goroutines*each {
		t.Fatalf("%d IDs, stats %+v, want %d", len(seen), m.Stats(), goroutines*each)
	}
	a, b := requestid.Generate(), requestid.Generate()
	if !isGenerated(a) || a == b {
		t.Errorf("Generate() = %q, %q", a, b)
	}
}

func TestContext(t *testing.T) {
	ctx := context.Background()
	if _, ok := requestid.FromContext(ctx); ok {
		t.Error("FromContext found an ID in Background")
	}
	if _, ok := requestid.TraceFromContext(ctx); ok {
		t.Error("TraceFromContext found a trace in Background")
	}
	type k struct{}
	ctx = context.WithValue(ctx, k{}, "v")
	ctx = requestid.NewContext(ctx, "job-1")
	if id, ok := requestid.FromContext(ctx); !ok || id != "job-1" {
		t.Errorf("FromContext = %q %v", id, ok)
	}
	if ctx.Value(k{}) != "v" {
		t.Error("the parent's values are lost")
	}
	tr, _ := requestid.ParseTraceparent(validTP)
	ctx = requestid.NewTraceContext(ctx, tr)
	if id, _ := requestid.FromContext(ctx); id != "job-1" {
		t.Errorf("NewTraceContext changed the ID to %q", id)
	}
	ctx = requestid.NewContext(ctx, "job-2")
	if got, ok := requestid.TraceFromContext(ctx); !ok || got != tr {
		t.Errorf("NewContext lost the trace: %+v %v", got, ok)
	}
	if id, _ := requestid.FromContext(requestid.NewTraceContext(context.Background(), tr)); id != traceID {
		t.Errorf("NewTraceContext without an ID: %q, want the trace ID", id)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if cctx.Err() == nil || ctx.Err() != nil {
		t.Error("cancellation crossed the wrong way")
	}
	if id, _ := requestid.FromContext(cctx); id != "job-2" {
		t.Errorf("child context lost the ID: %q", id)
	}
}

func logLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestLogHandlerAddsIDs(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(requestid.NewLogHandler(slog.NewJSONHandler(&buf, nil)))
	m, _ := requestid.NewHTTP(requestid.HTTPOptions{})
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "in handler", "k", 1)
		logger.With("svc", "api").WarnContext(r.Context(), "with attrs")
		logger.Info("no context")
		logger.DebugContext(r.Context(), "below the level")
	}))
	for _, hdr := range []map[string]string{{"X-Request-ID": "req-1"}, {"traceparent": validTP}} {
		buf.Reset()
		r := httptest.NewRequest("GET", "/", nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		lines := logLines(t, &buf)
		if len(lines) != 3 {
			t.Fatalf("%d lines, want 3: %s", len(lines), buf.String())
		}
		wantID := "req-1"
		if hdr["traceparent"] != "" {
			wantID = traceID
		}
		for _, l := range lines[:2] {
			if l["request_id"] != wantID {
				t.Errorf("line %v: request_id, want %q", l, wantID)
			}
			if hdr["traceparent"] != "" && (l["trace_id"] != traceID || l["span_id"] != spanID) {
				t.Errorf("line %v: want trace_id and span_id", l)
			}
			if hdr["traceparent"] == "" && (l["trace_id"] != nil || l["span_id"] != nil) {
				t.Errorf("line %v: trace ids without a traceparent", l)
			}
		}
		if lines[1]["svc"] != "api" || lines[0]["k"] != 1.0 {
			t.Errorf("attributes lost: %v", lines)
		}
		if _, ok := lines[2]["request_id"]; ok {
			t.Errorf("a line logged without a context got an ID: %v", lines[2])
		}
	}
	// Grouped loggers put the IDs in the group, as every record attribute.
	buf.Reset()
	logger.WithGroup("g").InfoContext(requestid.NewContext(context.Background(), "x"), "m")
	if l := logLines(t, &buf)[0]; l["g"].(map[string]any)["request_id"] != "x" {
		t.Errorf("grouped line %v", l)
	}
	if requestid.NewLogHandler(logger.Handler()) != logger.Handler() {
		t.Error("NewLogHandler wrapped a log handler twice")
	}
	if !logger.Handler().Enabled(context.Background(), slog.LevelInfo) || logger.Handler().Enabled(context.Background(), slog.LevelDebug) {
		t.Error("Enabled is not the wrapped handler's")
	}
}

// TestLogHandlerSharedRecord checks that adding the IDs never writes into
// a record's storage another handler also holds.
func TestLogHandlerSharedRecord(t *testing.T) {
	var a, b bytes.Buffer
	ha := requestid.NewLogHandler(slog.NewJSONHandler(&a, nil))
	hb := slog.NewJSONHandler(&b, nil)
	r := slog.NewRecord(timeZero, slog.LevelInfo, "m", 0)
	r.AddAttrs(slog.Int("a1", 1), slog.Int("a2", 2), slog.Int("a3", 3), slog.Int("a4", 4), slog.Int("a5", 5), slog.Int("a6", 6))
	ctx := requestid.NewContext(context.Background(), "x")
	if err := ha.Handle(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := hb.Handle(ctx, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "request_id") || strings.Contains(a.String()+b.String(), "BUG") || !strings.Contains(a.String(), `"request_id":"x"`) {
		t.Errorf("wrapped %s\nplain %s", a.String(), b.String())
	}
}

func TestLogHandlerConformance(t *testing.T) {
	// "with id": every record carries request_id (inside the open groups,
	// as every record attribute); past it, the wrapped handler's output
	// must pass slogtest as it does with no ID.
	for name, ctx := range map[string]context.Context{
		"no id":   context.Background(),
		"with id": requestid.NewContext(context.Background(), "x"),
	} {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			slogtest.Run(t, func(t *testing.T) slog.Handler {
				buf.Reset()
				return withCtx{requestid.NewLogHandler(slog.NewJSONHandler(&buf, nil)), ctx}
			}, func(t *testing.T) map[string]any {
				var m map[string]any
				if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
					t.Fatal(err)
				}
				if name == "with id" && !stripID(m) {
					t.Errorf("no request_id in %v", m)
				}
				return m
			})
		})
	}
}

// stripID deletes request_id from m, wherever the groups put it, and the
// groups it leaves empty, so that slogtest sees what the wrapped handler
// made of everything else. It reports whether it found one.
func stripID(m map[string]any) bool {
	found := false
	for k, v := range m {
		if k == "request_id" && v == "x" {
			delete(m, k)
			found = true
		}
		if g, ok := v.(map[string]any); ok {
			if stripID(g) {
				found = true
				if len(g) == 0 {
					delete(m, k)
				}
			}
		}
	}
	return found
}

// withCtx logs every record with ctx, whatever context it is given:
// slogtest logs with none.
type withCtx struct {
	slog.Handler
	ctx context.Context
}

func (w withCtx) Handle(_ context.Context, r slog.Record) error { return w.Handler.Handle(w.ctx, r) }
func (w withCtx) WithAttrs(as []slog.Attr) slog.Handler {
	return withCtx{w.Handler.WithAttrs(as), w.ctx}
}
func (w withCtx) WithGroup(name string) slog.Handler {
	return withCtx{w.Handler.WithGroup(name), w.ctx}
}

var timeZero time.Time

func TestTraceString(t *testing.T) {
	for _, in := range []string{validTP, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ab"} {
		tr, ok := requestid.ParseTraceparent(in)
		if !ok || tr.String() != in {
			t.Errorf("ParseTraceparent(%q).String() = %q (ok %v)", in, tr.String(), ok)
		}
	}
	// A later version is written back as version 00.
	tr, _ := requestid.ParseTraceparent("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")
	if tr.String() != validTP {
		t.Errorf("got %q", tr.String())
	}
}
