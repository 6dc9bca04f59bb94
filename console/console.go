package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/internal/logx"
)

// ErrInvalid is wrapped by errors about bad options or arguments (no
// Authorize, a nil primitive, a bad queue name).
var ErrInvalid = errors.New("console: invalid")

// ErrDuplicate is wrapped by the error an Add method returns when the same
// primitive, or another of the same kind and name, was added already.
var ErrDuplicate = errors.New("console: duplicate")

// DefaultRefresh is how often a page reloads itself when
// Options.Refresh is 0.
const DefaultRefresh = 5 * time.Second

// DefaultLagAmber is Options.LagAmber's default: 16 MiB of WAL.
const DefaultLagAmber = 16 << 20

// Options configures New.
type Options struct {
	// Authorize decides whether a request may see the console (check a
	// token, a session, a client certificate). Every request it refuses
	// gets 401 Unauthorized. Required, unless InsecureLoopbackOnly is set.
	Authorize func(r *http.Request) bool
	// InsecureLoopbackOnly serves the console without authorization, to
	// requests whose remote address is a loopback address (127.0.0.0/8,
	// ::1) only; every other request gets 401. It is meant for a
	// developer's machine. Do not set it behind a reverse proxy on the same
	// host: every request then comes from loopback. It may not be set
	// together with Authorize. Default: false.
	InsecureLoopbackOnly bool
	// ReadOnly hides every action (force a breaker open or closed, reset
	// it) and refuses every POST with 403. Default: false.
	ReadOnly bool
	// Title heads every page. Default: "scalekit".
	Title string
	// Refresh is how often a page reloads itself (by its script, which
	// waits while someone types in a form, or without JavaScript by a
	// meta refresh); negative turns reloading off.
	// Default: DefaultRefresh (5s).
	Refresh time.Duration
	// LagAmber is the replay lag, in bytes of WAL, from which a healthy
	// dbrouter replica shows amber. Default: DefaultLagAmber (16 MiB).
	LagAmber int64
	// Sample is how often Start samples the primitives' numbers for the
	// charts. Default: DefaultSample (10s).
	Sample time.Duration
	// History is how far back the charts go: the samples kept, in memory
	// (16 bytes a sample per series, a few series per primitive: about
	// 17 KiB per series at the defaults), at most 4096 per series.
	// Default: DefaultHistory (3h).
	History time.Duration
	// Clock replaces the system clock (see package clock) for the relative
	// times shown ("3 s ago") and the times of the samples; nil is the
	// real time.
	Clock clock.Clock
	// Logger receives the actions taken from the console (who forced
	// which breaker) at Info. Default: discard.
	Logger *slog.Logger
}

// Console is an http.Handler showing the primitives added to it. It is
// safe for concurrent use: Add methods may run while pages are served.
type Console struct {
	o     Options
	mux   *http.ServeMux
	pages *template.Template

	mu       sync.RWMutex
	seen     added.Set
	sources  []source
	breakers map[string]breakerRef // forceable breakers, by name
	// queueRefs are the AddQueue clients in the order added, queueClients
	// the same by name.
	queueRefs    []queueRef
	queueClients map[string]queueRef

	hist *history
	// runMu guards the sampling's stop and done (set by Start).
	runMu   sync.Mutex
	stop    context.CancelFunc
	done    chan struct{}
	started atomic.Bool
}

//go:embed assets
var assets embed.FS

var pages = template.Must(template.New("").Funcs(funcs).ParseFS(assets, "assets/*.tmpl"))

// New returns a Console, or an error wrapping ErrInvalid naming the bad
// option.
func New(o Options) (*Console, error) {
	switch {
	case o.Authorize == nil && !o.InsecureLoopbackOnly:
		return nil, fmt.Errorf("%w: Options.Authorize is required (or set InsecureLoopbackOnly to serve loopback requests without authorization)", ErrInvalid)
	case o.Authorize != nil && o.InsecureLoopbackOnly:
		return nil, fmt.Errorf("%w: set either Options.Authorize or Options.InsecureLoopbackOnly, not both", ErrInvalid)
	case o.LagAmber < 0:
		return nil, fmt.Errorf("%w: Options.LagAmber must be >= 0 bytes, got %d", ErrInvalid, o.LagAmber)
	case o.Sample < 0 || (o.Sample > 0 && o.Sample < 100*time.Millisecond):
		return nil, fmt.Errorf("%w: Options.Sample must be >= 100ms (0: the default 10s), got %v", ErrInvalid, o.Sample)
	case o.History < 0:
		return nil, fmt.Errorf("%w: Options.History must be > 0 (0: the default 3h), got %v", ErrInvalid, o.History)
	}
	if o.Sample == 0 {
		o.Sample = DefaultSample
	}
	if o.History == 0 {
		o.History = DefaultHistory
	}
	if o.History < o.Sample {
		return nil, fmt.Errorf("%w: Options.History (%v) must be >= Options.Sample (%v)", ErrInvalid, o.History, o.Sample)
	}
	if o.Title == "" {
		o.Title = "scalekit"
	}
	if o.Refresh == 0 {
		o.Refresh = DefaultRefresh
	}
	if o.LagAmber == 0 {
		o.LagAmber = DefaultLagAmber
	}
	if o.Logger == nil {
		o.Logger = logx.Discard
	}
	c := &Console{o: o, pages: pages, breakers: map[string]breakerRef{}, queueClients: map[string]queueRef{}, hist: newHistory(o.History, o.Sample)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /breakers", c.breakerPage)
	mux.HandleFunc("POST /breakers", c.breakerAction)
	mux.HandleFunc("GET /queues", c.queuePage)
	mux.HandleFunc("POST /queues/action", c.queueAction)
	for _, k := range kindPages {
		mux.HandleFunc("GET /"+k.path, func(w http.ResponseWriter, r *http.Request) { c.kindPage(w, k) })
	}
	mux.HandleFunc("GET /style.css", serveAsset("style.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /console.js", serveAsset("console.js", "text/javascript; charset=utf-8"))
	c.mux = mux
	return c, nil
}

var cop = http.NewCrossOriginProtection()

// ServeHTTP authorizes r (401 if refused), refuses cross-origin POSTs
// (403, http.CrossOriginProtection) and POSTs in ReadOnly mode (403),
// then serves the page. Mount it under a prefix with http.StripPrefix:
// its links are relative.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !c.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="console"`)
		http.Error(w, "401 unauthorized", http.StatusUnauthorized)
		return
	}
	if err := cop.Check(r); err != nil {
		http.Error(w, "403 forbidden: "+err.Error(), http.StatusForbidden)
		return
	}
	if c.o.ReadOnly && r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "403 forbidden: the console is read-only", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	c.mux.ServeHTTP(w, r)
}

func (c *Console) authorized(r *http.Request) bool {
	if c.o.Authorize != nil {
		return c.o.Authorize(r)
	}
	return isLoopback(r.RemoteAddr)
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// serveAsset serves the embedded file assets/name.
func serveAsset(name, contentType string) http.HandlerFunc {
	body, _ := assets.ReadFile("assets/" + name)
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Write(body)
	}
}
