package console

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
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
	// Refresh is how often a page reloads itself (a meta refresh: it
	// needs no JavaScript); negative turns reloading off.
	// Default: DefaultRefresh (5s).
	Refresh time.Duration
	// LagAmber is the replay lag, in bytes of WAL, from which a healthy
	// dbrouter replica shows amber. Default: DefaultLagAmber (16 MiB).
	LagAmber int64
	// Clock replaces the system clock (see package clock) for the relative
	// times shown ("3 s ago"); nil is the real time.
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
	c := &Console{o: o, pages: pages, breakers: map[string]breakerRef{}, queueClients: map[string]queueRef{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /breakers", c.breakerPage)
	mux.HandleFunc("POST /breakers", c.breakerAction)
	mux.HandleFunc("GET /queues", c.queuePage)
	mux.HandleFunc("POST /queues/action", c.queueAction)
	mux.HandleFunc("GET /style.css", serveCSS)
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
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'")
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

func serveCSS(w http.ResponseWriter, _ *http.Request) {
	css, _ := assets.ReadFile("assets/style.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Write(css)
}
