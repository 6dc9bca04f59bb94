// Command loadgen drives examples/service with an open-loop load: requests
// start at a fixed arrival rate whatever the service's latency, each in its
// own goroutine, and every latency is measured from the request's intended
// start, so a slow service cannot hide the queueing it causes (no
// coordinated omission).
//
//	go run ./examples/service &
//	go run ./examples/loadgen -url http://127.0.0.1:8080 -duration 30s -rate 500 -mix reads=80,writes=10,payments=10
//	go run ./examples/loadgen -mix reads=70,posts=10,writes=5,payments=10,emails=5 -chaos-provider-fail 0.5 -chaos-stop redis
//
// It prints a progress line every second and, at the end: throughput;
// latency percentiles overall and per kind of request; status codes;
// expected outcomes (429, 404 for an unknown user, 502/503 from the payment
// provider, 409 for a replayed key still running) apart from unexpected
// errors; the payment replay check (a replay must return the original's
// bytes); the read-your-writes check (a client that wrote version v of a
// user never reads an older one: every write is read back at once by the
// same client, whatever the rate, and later reads of users it wrote are
// checked too); the service's /admin/stats and /slo. Each virtual user
// carries its newest read-your-writes token (X-DB-Token) as a careful API
// client does, besides the cookie: concurrent writes can answer out of
// order, and a cookie jar keeps the last token set, not the newest.
//
// Exit status: 1 when anything unexpected happened, 2 for bad flags or an
// unreachable service, else 0.
//
// Only loopback targets are allowed unless -allow-remote is given.
package main

import (
	"bytes"
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/bits"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		os.Exit(2) // parseFlags said what is wrong
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	sum, err := run(ctx, cfg, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
	}
	os.Exit(exitCode(sum, err))
}

// exitCode is the process status for a run: 2 when it could not run, 1 when
// anything unexpected happened, else 0.
func exitCode(s summary, err error) int {
	switch {
	case err != nil:
		return 2
	case s.Unexpected > 0:
		return 1
	}
	return 0
}

// ---------------------------------------------------------------------------
// Configuration

// kind is a kind of request.
type kind int

const (
	kindReads    kind = iota // GET /users/{id}
	kindWrites               // PUT /users/{id}
	kindPosts                // GET /posts?limit=N
	kindPayments             // POST /payments with a new Idempotency-Key
	kindEmails               // POST /emails
	kindReplays              // POST /payments re-sending an earlier key and body; not in -mix
	numKinds
)

// numMixKinds is how many kinds -mix can weigh: all but replays.
const numMixKinds = kindReplays

// allKinds indexes the all-requests row of summary.Latency.
const allKinds = numKinds

var kindNames = [numKinds]string{"reads", "writes", "posts", "payments", "emails", "replays"}

func (k kind) String() string { return kindNames[k] }

// mix is the weight of each kind of request.
type mix [numMixKinds]int

const maxWeight = 1_000_000

// parseMix parses "reads=80,writes=10,payments=10". Weights are
// non-negative integers, at least one positive; kinds left out weigh 0.
func parseMix(s string) (mix, error) {
	var m mix
	if strings.TrimSpace(s) == "" {
		return m, errors.New("-mix is empty; want e.g. reads=80,writes=10,payments=10")
	}
	var seen [numMixKinds]bool
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return m, fmt.Errorf("-mix: %q is not name=weight (e.g. reads=80)", part)
		}
		name = strings.TrimSpace(name)
		k := slices.Index(kindNames[:numMixKinds], name)
		if k < 0 {
			return m, fmt.Errorf("-mix: unknown kind %q; known: %s", name, strings.Join(kindNames[:numMixKinds], ", "))
		}
		if seen[k] {
			return m, fmt.Errorf("-mix: %s is given twice", name)
		}
		seen[k] = true
		w, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil || w < 0 || w > maxWeight {
			return m, fmt.Errorf("-mix: the weight of %s must be an integer in [0, %d], got %q", name, maxWeight, val)
		}
		m[k] = w
	}
	if m.total() == 0 {
		return m, fmt.Errorf("-mix: at least one weight must be positive, got %q", s)
	}
	return m, nil
}

func (m mix) total() int {
	t := 0
	for _, w := range m {
		t += w
	}
	return t
}

// pick maps n in [0, total) to a kind, each kind taking its weight's share.
func (m mix) pick(n int) kind {
	for k, w := range m {
		if n < w {
			return kind(k)
		}
		n -= w
	}
	return kindReads // unreachable for n in [0, total)
}

func (m mix) String() string {
	var parts []string
	for k, w := range m {
		if w > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", kind(k), w))
		}
	}
	return strings.Join(parts, ",")
}

// config is what one run does. defaultConfig holds the flags' defaults;
// run validates and uses the values as given (no zero-value defaults).
type config struct {
	URL            string        // the service's base URL; loopback only unless AllowRemote
	Duration       time.Duration // how long requests are started
	Rate           float64       // requests started per second
	Mix            mix           // the share of each kind of request
	Timeout        time.Duration // per request, from when it is sent
	Users          int           // user ids are drawn from 1..Users
	MaxInflight    int           // a request due while this many are in flight is dropped
	ReplayFraction float64       // the share of payments that re-send an earlier key and body

	SetProviderFail bool    // POST /admin/chaos?provider_fail=ProviderFail before the load
	ProviderFail    float64 // in [0, 1]

	ChaosStop  string        // "", "replica" or "redis": stopped at ChaosAt, started at ChaosUntil
	ChaosAt    time.Duration // in (0, ChaosUntil)
	ChaosUntil time.Duration // in (ChaosAt, Duration]

	Quiet         bool          // no progress lines
	AllowRemote   bool          // allow a target that is not loopback
	ProgressEvery time.Duration // the interval between progress lines
	JobSample     int           // how many email jobs are looked up at the end
}

func defaultConfig() config {
	m, _ := parseMix("reads=80,writes=10,payments=10")
	return config{
		URL:            "http://127.0.0.1:8080",
		Duration:       30 * time.Second,
		Rate:           500,
		Mix:            m,
		Timeout:        5 * time.Second,
		Users:          1000,
		MaxInflight:    2000,
		ReplayFraction: 0.05,
		ProgressEvery:  time.Second,
		JobSample:      50,
	}
}

// parseFlags reads the command line into a config and validates it. On
// error it has already told stderr what is wrong.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run ./examples/loadgen [flags]\n\nOpen-loop load against examples/service; exits 1 on unexpected errors.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.URL, "url", cfg.URL, "the service's base URL (loopback only unless -allow-remote)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to start requests")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "requests started per second (open loop: whatever the latency)")
	mixFlag := fs.String("mix", cfg.Mix.String(), "weights of reads, writes, posts, payments and emails")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "user ids are drawn from 1..N (the service seeds 1..1000)")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", cfg.MaxInflight, "requests in flight at most; one due beyond it is counted as dropped (client overload)")
	fs.Float64Var(&cfg.ReplayFraction, "replay-fraction", cfg.ReplayFraction, "share of payments that re-send an earlier Idempotency-Key and body")
	providerFail := fs.Float64("chaos-provider-fail", -1, "set the payment provider's failure rate (0..1) before the load; -1 leaves it as is")
	fs.StringVar(&cfg.ChaosStop, "chaos-stop", "", "replica or redis: stop it at -chaos-at and start it again at -chaos-until")
	fs.DurationVar(&cfg.ChaosAt, "chaos-at", 0, "when -chaos-stop stops its target (default half of -duration)")
	fs.DurationVar(&cfg.ChaosUntil, "chaos-until", 0, "when -chaos-stop starts its target again (default 3/4 of -duration)")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no progress lines, only the report")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a target that is not 127.0.0.1/localhost")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	fail := func(err error) (config, error) {
		fmt.Fprintln(stderr, "loadgen:", err)
		return cfg, err
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q; every setting is a flag (-h lists them)", fs.Args()))
	}
	m, err := parseMix(*mixFlag)
	if err != nil {
		return fail(err)
	}
	cfg.Mix = m
	switch {
	case *providerFail == -1:
	case *providerFail >= 0 && *providerFail <= 1:
		cfg.SetProviderFail, cfg.ProviderFail = true, *providerFail
	default:
		return fail(fmt.Errorf("-chaos-provider-fail must be in [0, 1], or -1 to leave it as is, got %g", *providerFail))
	}
	if cfg.ChaosStop != "" {
		if cfg.ChaosAt == 0 {
			cfg.ChaosAt = cfg.Duration / 2
		}
		if cfg.ChaosUntil == 0 {
			cfg.ChaosUntil = cfg.Duration * 3 / 4
		}
	}
	if err := cfg.validate(); err != nil {
		return fail(err)
	}
	return cfg, nil
}

// validate says what to fix, naming the flag.
func (c config) validate() error {
	if _, err := targetURL(c.URL, c.AllowRemote); err != nil {
		return err
	}
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("-duration must be > 0, got %v", c.Duration)
	case !(c.Rate > 0 && c.Rate <= 1e6):
		return fmt.Errorf("-rate must be in (0, 1e6] requests per second, got %g", c.Rate)
	case c.Mix.total() == 0:
		return errors.New("-mix: at least one weight must be positive")
	case c.Timeout <= 0:
		return fmt.Errorf("-timeout must be > 0, got %v", c.Timeout)
	case c.Users < 1:
		return fmt.Errorf("-users must be >= 1, got %d", c.Users)
	case c.MaxInflight < 1:
		return fmt.Errorf("-max-inflight must be >= 1, got %d", c.MaxInflight)
	case !(c.ReplayFraction >= 0 && c.ReplayFraction <= 1):
		return fmt.Errorf("-replay-fraction must be in [0, 1], got %g", c.ReplayFraction)
	case c.SetProviderFail && !(c.ProviderFail >= 0 && c.ProviderFail <= 1):
		return fmt.Errorf("-chaos-provider-fail must be in [0, 1], got %g", c.ProviderFail)
	case c.ProgressEvery <= 0:
		return fmt.Errorf("the progress interval must be > 0, got %v", c.ProgressEvery)
	case c.JobSample < 0:
		return fmt.Errorf("the job sample must be >= 0, got %d", c.JobSample)
	}
	for _, w := range c.Mix {
		if w < 0 {
			return errors.New("-mix: weights must be non-negative")
		}
	}
	switch c.ChaosStop {
	case "":
		if c.ChaosAt != 0 || c.ChaosUntil != 0 {
			return errors.New("-chaos-at and -chaos-until need -chaos-stop replica|redis")
		}
	case "replica", "redis":
		if !(c.ChaosAt > 0 && c.ChaosAt < c.ChaosUntil && c.ChaosUntil <= c.Duration) {
			return fmt.Errorf("-chaos-at (%v) and -chaos-until (%v) must satisfy 0 < at < until <= -duration (%v)", c.ChaosAt, c.ChaosUntil, c.Duration)
		}
	default:
		return fmt.Errorf("-chaos-stop must be replica or redis, got %q", c.ChaosStop)
	}
	return nil
}

// targetURL parses the base URL and refuses a host that is not loopback
// unless allowRemote.
func targetURL(raw string, allowRemote bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("-url must be a base URL like http://127.0.0.1:8080, got %q", raw)
	}
	if h := u.Hostname(); !allowRemote && !isLoopback(h) {
		return nil, fmt.Errorf("-url: %q is not a loopback host; load tests only target 127.0.0.1 or localhost (pass -allow-remote to override)", h)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ---------------------------------------------------------------------------
// Latency histogram

const (
	histSubBits  = 8
	histSub      = 1 << histSubBits // buckets per power of two above histExact
	histExact    = 2 * histSub      // values (µs) below this have a bucket each
	histMaxShift = 32               // the top bucket ends at 2^41 µs (25 days)
	histBuckets  = histExact + histMaxShift*histSub
)

// histogram is a log-linear (HDR-style) latency histogram in microseconds:
// exact below 512µs, then 256 buckets per power of two, so a quantile is
// never below the true value and at most 0.4% above it. record is
// lock-free; readers take a snapshot.
type histogram struct {
	counts [histBuckets]atomic.Int64
	maxUS  atomic.Int64
}

func bucketOf(us int64) int {
	if us < histExact {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - (histSubBits + 1) // us>>shift is in [histSub, 2*histSub)
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return histExact + (shift-1)*histSub + int(us>>shift) - histSub
}

// bucketHigh is the highest value (µs) bucket i holds.
func bucketHigh(i int) int64 {
	if i < histExact {
		return int64(i)
	}
	shift := (i-histExact)/histSub + 1
	top := int64((i-histExact)%histSub + histSub)
	return (top+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	us := int64((d + time.Microsecond - 1) / time.Microsecond) // round up: quantiles never flatter
	h.counts[bucketOf(us)].Add(1)
	for m := h.maxUS.Load(); us > m && !h.maxUS.CompareAndSwap(m, us); m = h.maxUS.Load() {
	}
}

// histSnapshot is a histogram's counts at one moment.
type histSnapshot struct {
	counts []int64
	n      int64
	maxUS  int64
}

func (h *histogram) snapshot() histSnapshot {
	s := histSnapshot{counts: make([]int64, histBuckets), maxUS: h.maxUS.Load()}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.counts[i] = c
		s.n += c
	}
	return s
}

// quantile returns the q-quantile, q in (0, 1]; 0 when empty.
func (s histSnapshot) quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := max(int64(q*float64(s.n)+0.999999), 1)
	var seen int64
	for i, c := range s.counts {
		if seen += c; seen >= rank {
			return time.Duration(min(bucketHigh(i), s.maxUS)) * time.Microsecond
		}
	}
	return time.Duration(s.maxUS) * time.Microsecond
}

// latencyStats is a latency summary.
type latencyStats struct {
	Count              int64
	P50, P95, P99, Max time.Duration
}

func (s histSnapshot) stats() latencyStats {
	return latencyStats{Count: s.n, P50: s.quantile(0.50), P95: s.quantile(0.95), P99: s.quantile(0.99),
		Max: time.Duration(s.maxUS) * time.Microsecond}
}

// ---------------------------------------------------------------------------
// Outcomes

type outcome int

const (
	outcomeOK outcome = iota
	outcomeExpected
	outcomeUnexpected
)

// result is what one request got.
type result struct {
	status   int         // 0: no response
	err      error       // transport error or timeout
	end      time.Time   // when the response was read or the request failed
	header   http.Header // nil without a response
	body     []byte      // up to maxBody bytes
	problem  string      // a success whose body breaks the contract: the category ...
	detail   string      // ... and the particulars
	expected string      // a status that context makes expected (a 409 caused by our own replay)
}

// classify sorts a result into ok, expected (429; 404 for an unknown
// user; 502, 503 and 422 for payments; 409 for a replay while its original
// runs) or unexpected (everything else), with a reason.
func classify(k kind, r result) (outcome, string) {
	switch {
	case r.err != nil:
		return outcomeUnexpected, errClass(r.err)
	case r.problem != "":
		return outcomeUnexpected, r.problem
	case r.expected != "":
		return outcomeExpected, r.expected
	case r.status == http.StatusTooManyRequests:
		return outcomeExpected, "429 rate limited"
	}
	s := r.status
	switch k {
	case kindReads, kindWrites:
		switch s {
		case http.StatusOK:
			return outcomeOK, ""
		case http.StatusNotFound:
			return outcomeExpected, "404 no such user"
		}
	case kindPosts:
		if s == http.StatusOK {
			return outcomeOK, ""
		}
	case kindPayments, kindReplays:
		switch s {
		case http.StatusCreated:
			return outcomeOK, ""
		case http.StatusOK:
			if k == kindReplays {
				return outcomeOK, ""
			}
		case http.StatusBadGateway:
			return outcomeExpected, "502 provider failed after retries"
		case http.StatusServiceUnavailable:
			return outcomeExpected, "503 unavailable (circuit open)"
		case http.StatusConflict:
			if k == kindReplays {
				return outcomeExpected, "409 original still running"
			}
		case http.StatusUnprocessableEntity:
			// A replay re-sends the original's exact body, so a 422 there
			// means the service fingerprinted the same request differently.
			if k == kindPayments {
				return outcomeExpected, "422 refused"
			}
		}
	case kindEmails:
		if s == http.StatusAccepted {
			return outcomeOK, ""
		}
	}
	if s == 0 {
		return outcomeUnexpected, "no response"
	}
	return outcomeUnexpected, fmt.Sprintf("%d %s", s, http.StatusText(s))
}

// errClass names a transport error briefly, so errors group well.
func errClass(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no local port left (EADDRNOTAVAIL)"
	case errors.Is(err, syscall.EMFILE):
		return "too many open files (raise ulimit -n)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed (EOF)"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return "transport: " + err.Error()
}

// ---------------------------------------------------------------------------
// The generator

// vuser is a virtual user: the requests about one user id share a client
// with its own cookie jar, so a write's read-your-writes token goes back
// with that user's later requests, and the newest token any response
// returned is sent in the X-DB-Token header as well (the jar keeps the
// token set last, which concurrent writes answering out of order make an
// older one).
type vuser struct {
	client  *http.Client
	version atomic.Int64 // the highest user version a write returned to this client

	mu       sync.Mutex
	token    string // the newest X-DB-Token a response carried
	tokenLSN uint64
}

// tokenHeader is the service's read-your-writes token header.
const tokenHeader = "X-DB-Token"

// tokenLSN reads the LSN of a token ("16/B374D848@1767225600123"); ok is
// false when it is not one.
func tokenLSN(tok string) (uint64, bool) {
	l, _, ok := strings.Cut(tok, "@")
	hi, lo, ok2 := strings.Cut(l, "/")
	if !ok || !ok2 {
		return 0, false
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	w, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return h<<32 | w, true
}

// noteToken keeps tok when it is newer than the token vu holds.
func (vu *vuser) noteToken(tok string) {
	l, ok := tokenLSN(tok)
	if !ok {
		return
	}
	vu.mu.Lock()
	if l > vu.tokenLSN || vu.token == "" {
		vu.token, vu.tokenLSN = tok, l
	}
	vu.mu.Unlock()
}

// header is the X-DB-Token header pair to send, or none.
func (vu *vuser) header() []string {
	vu.mu.Lock()
	defer vu.mu.Unlock()
	if vu.token == "" {
		return nil
	}
	return []string{tokenHeader, vu.token}
}

// send is generator.send with vu's client and newest token, keeping any
// newer token the response returns.
func (vu *vuser) send(ctx context.Context, g *generator, method, path string, body []byte, header ...string) result {
	r := g.send(ctx, vu.client, method, path, body, append(vu.header(), header...)...)
	if r.header != nil {
		vu.noteToken(r.header.Get(tokenHeader))
	}
	return r
}

// payment is a payment request a replay may re-send.
type payment struct {
	key      string
	body     []byte
	client   *http.Client
	replayed atomic.Bool   // a replay of it was sent
	done     chan struct{} // closed once the fields below are set
	status   int           // 0: no response
	resp     []byte
	hdr      bool // the response said Idempotent-Replayed: true (its replay overtook it)
}

// paymentRing holds the latest payments, for replays to pick from.
type paymentRing struct {
	mu   sync.Mutex
	buf  [1024]*payment
	n    int
	next int
}

func (r *paymentRing) add(p *payment) {
	r.mu.Lock()
	r.buf[r.next] = p
	r.next = (r.next + 1) % len(r.buf)
	r.n = min(r.n+1, len(r.buf))
	r.mu.Unlock()
}

func (r *paymentRing) random() *payment {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == 0 {
		return nil
	}
	return r.buf[rand.IntN(r.n)]
}

type reasonKey struct {
	kind    kind
	outcome outcome
	reason  string
}

// phase is what happened to requests meant to start before, during or
// after a -chaos-stop.
type phase struct {
	ok, expected, unexpected atomic.Int64
	lat                      histogram
}

var phaseNames = [3]string{"before stop", "stopped", "after start"}

const (
	maxBody    = 1 << 20
	maxSamples = 10
	postsLimit = 10
)

type generator struct {
	cfg    config
	base   string // the URL without a trailing slash
	out    io.Writer
	tr     *http.Transport
	admin  *http.Client // no cookie jar: admin endpoints and job look-ups
	users  sync.Map     // int -> *vuser
	start  time.Time
	reqs   sync.WaitGroup
	maxLag time.Duration // the scheduler's worst lateness; read after it returns

	sent, done, dropped, canceled, inflight atomic.Int64
	ok, expected, unexpected                atomic.Int64

	status [numKinds][600]atomic.Int64 // [k][0]: no response
	lat    [numKinds]histogram
	all    histogram
	phases [3]phase

	payments paymentRing
	replay   struct{ sent, compared, identical, bodyDiffers, statusDiffers, noHeader, overtook atomic.Int64 }
	ryw      struct{ checked, stale, readBacks atomic.Int64 }
	limited  struct{ total, noRetryAfter, noRateLimit atomic.Int64 }

	mu          sync.Mutex
	reasons     map[reasonKey]int64 // outcomes other than ok
	samples     []string            // the first unexpected errors, in detail
	notCompared map[string]int64    // replays not compared, by reason
	events      []string            // chaos
	jobURLs     []string            // the first email jobs' status URLs
}

func newGenerator(cfg config, out io.Writer) (*generator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, _ := targetURL(cfg.URL, cfg.AllowRemote)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.MaxInflight,
		MaxIdleConnsPerHost: cfg.MaxInflight,
		IdleConnTimeout:     90 * time.Second,
	}
	return &generator{
		cfg:         cfg,
		base:        strings.TrimSuffix(u.String(), "/"),
		out:         out,
		tr:          tr,
		admin:       &http.Client{Transport: tr},
		reasons:     map[reasonKey]int64{},
		notCompared: map[string]int64{},
	}, nil
}

func (g *generator) user(id int) *vuser {
	if v, ok := g.users.Load(id); ok {
		return v.(*vuser)
	}
	jar, _ := cookiejar.New(nil) // never fails without options
	v, _ := g.users.LoadOrStore(id, &vuser{client: &http.Client{Transport: g.tr, Jar: jar}})
	return v.(*vuser)
}

// run starts requests at cfg.Rate for cfg.Duration, waits for the last
// ones, prints the report to stdout and returns its numbers. An error means
// the run could not start (bad config, unreachable service, refused chaos);
// an interrupted run (ctx done) still reports what it saw.
func run(ctx context.Context, cfg config, stdout io.Writer) (summary, error) {
	out := &lockedWriter{w: stdout}
	g, err := newGenerator(cfg, out)
	if err != nil {
		return summary{}, err
	}
	defer g.tr.CloseIdleConnections()
	if err := g.preflight(ctx); err != nil {
		return summary{}, err
	}
	replays := ""
	if cfg.Mix[kindPayments] > 0 && cfg.ReplayFraction > 0 {
		replays = fmt.Sprintf(" (%g%% of payments replayed)", 100*cfg.ReplayFraction)
	}
	fmt.Fprintf(out, "loadgen: %g req/s for %v against %s, mix %s%s, timeout %v, max in flight %d, users 1..%d\n",
		cfg.Rate, cfg.Duration, g.base, cfg.Mix, replays, cfg.Timeout, cfg.MaxInflight, cfg.Users)

	g.start = time.Now()
	if cfg.SetProviderFail {
		if !g.chaos(ctx, fmt.Sprintf("provider_fail=%g", cfg.ProviderFail)) {
			return summary{}, fmt.Errorf("-chaos-provider-fail %g: the service refused it (see above)", cfg.ProviderFail)
		}
		g.start = time.Now() // the schedule starts after the call
	}
	var aux sync.WaitGroup
	stopProgress := make(chan struct{})
	if !cfg.Quiet {
		aux.Go(func() { g.progress(stopProgress) })
	}
	if cfg.ChaosStop != "" {
		aux.Go(func() { g.chaosStop(ctx) })
	}
	scheduled := g.schedule(ctx)
	g.reqs.Wait()
	elapsed := time.Since(g.start)
	close(stopProgress)
	aux.Wait()

	// The report's look-ups run even after an interrupt, each bounded.
	bg := context.WithoutCancel(ctx)
	sum := g.summarize(scheduled, elapsed, ctx.Err() != nil)
	sum.Jobs = g.lookUpJobs(bg)
	sum.AdminStats = g.adminStats(bg)
	sum.SLO = g.slo(bg)
	writeReport(out, cfg, sum)
	return sum, nil
}

// preflight fails fast, with advice, when nothing listens at the URL. Any
// HTTP answer will do.
func (g *generator) preflight(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	r := g.send(ctx, g.admin, http.MethodGet, "/health/live", nil)
	if r.err != nil {
		return fmt.Errorf("cannot reach the service at %s (%s); start it with: go run ./examples/service", g.base, errClass(r.err))
	}
	return nil
}

// schedule starts request i at start + i/rate, whatever happened to the
// earlier ones (open loop), and returns how long it scheduled. A request
// due while MaxInflight are in flight is dropped and counted, so the
// schedule never waits for the service.
func (g *generator) schedule(ctx context.Context) time.Duration {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	perReq := float64(time.Second) / g.cfg.Rate
	for i := int64(0); ; i++ {
		at := g.start.Add(time.Duration(float64(i) * perReq))
		if at.Sub(g.start) >= g.cfg.Duration {
			return g.cfg.Duration
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return time.Since(g.start)
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return time.Since(g.start)
		}
		g.maxLag = max(g.maxLag, time.Since(at))
		if g.inflight.Load() >= int64(g.cfg.MaxInflight) {
			g.dropped.Add(1)
			continue
		}
		g.inflight.Add(1)
		g.sent.Add(1)
		g.reqs.Go(func() {
			defer g.inflight.Add(-1)
			g.fire(ctx, at)
		})
	}
}

// fire sends one request meant to start at intended and records it, its
// latency counted from intended.
func (g *generator) fire(ctx context.Context, intended time.Time) {
	k := g.cfg.Mix.pick(rand.IntN(g.cfg.Mix.total()))
	uid := 1 + rand.IntN(g.cfg.Users)
	vu := g.user(uid)
	rctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	var r result
	switch k {
	case kindReads:
		r = g.read(rctx, vu, uid)
	case kindWrites:
		r = g.write(rctx, vu, uid)
	case kindPosts:
		r = g.posts(rctx, vu)
	case kindPayments:
		if rand.Float64() < g.cfg.ReplayFraction {
			if p := g.payments.random(); p != nil {
				k, r = kindReplays, g.replayPayment(rctx, p)
				break
			}
		}
		r = g.pay(rctx, vu, uid)
	case kindEmails:
		r = g.email(rctx, vu, uid)
	}
	g.record(ctx, k, intended, r)
}

// send makes one request and reads the response (up to maxBody).
func (g *generator) send(ctx context.Context, c *http.Client, method, path string, body []byte, header ...string) result {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		return result{err: err, end: time.Now()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "scalekit-loadgen")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err, end: time.Now()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	io.Copy(io.Discard, resp.Body) // let the connection be reused
	return result{status: resp.StatusCode, err: err, end: time.Now(), header: resp.Header, body: b}
}

type userJSON struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	Version int64  `json:"version"`
}

// read: GET /users/{id}. When this client wrote the user before, the
// version read must be at least the one its write returned.
func (g *generator) read(ctx context.Context, vu *vuser, uid int) result {
	wrote := vu.version.Load()
	r := vu.send(ctx, g, http.MethodGet, "/users/"+strconv.Itoa(uid), nil)
	if r.err != nil || r.status != http.StatusOK {
		return r
	}
	var u userJSON
	if err := json.Unmarshal(r.body, &u); err != nil || u.ID != int64(uid) || u.Name == "" || u.Email == "" {
		r.problem, r.detail = "200 without the user asked for", fmt.Sprintf("GET /users/%d: %s", uid, excerpt(r.body))
		return r
	}
	if wrote > 0 {
		g.ryw.checked.Add(1)
		if u.Version < wrote {
			g.ryw.stale.Add(1)
			r.problem = "stale read (read-your-writes)"
			r.detail = fmt.Sprintf("GET /users/%d: this client's write returned version %d, the read version %d", uid, wrote, u.Version)
		}
	}
	return r
}

// write: PUT /users/{id}, then the same client reads the user back at once
// (as a client showing what it saved does): the read must return at least
// the version the write did. The read-back makes the read-your-writes
// check run on every write, at any rate; a stale one makes the write
// unexpected. The cookie jar and vu's newest token carry the
// read-your-writes token.
func (g *generator) write(ctx context.Context, vu *vuser, uid int) result {
	name := "Loadgen " + strconv.FormatUint(rand.Uint64()%1e9, 36)
	body, _ := json.Marshal(map[string]string{"name": name, "email": fmt.Sprintf("user%d@example.com", uid)})
	r := vu.send(ctx, g, http.MethodPut, "/users/"+strconv.Itoa(uid), body)
	if r.err != nil || r.status != http.StatusOK {
		return r
	}
	var u userJSON
	if err := json.Unmarshal(r.body, &u); err != nil || u.ID != int64(uid) || u.Name != name {
		r.problem, r.detail = "200 without the user written", fmt.Sprintf("PUT /users/%d name %q: %s", uid, name, excerpt(r.body))
		return r
	}
	for v := vu.version.Load(); u.Version > v && !vu.version.CompareAndSwap(v, u.Version); v = vu.version.Load() {
	}
	back := vu.send(ctx, g, http.MethodGet, "/users/"+strconv.Itoa(uid), nil)
	var got userJSON
	if back.err != nil || back.status != http.StatusOK || json.Unmarshal(back.body, &got) != nil || got.ID != int64(uid) {
		return r // no answer to check (a 429, a timeout): the write stands on its own
	}
	g.ryw.checked.Add(1)
	g.ryw.readBacks.Add(1)
	if got.Version < u.Version {
		g.ryw.stale.Add(1)
		r.problem = "stale read-back (read-your-writes)"
		r.detail = fmt.Sprintf("PUT /users/%d returned version %d; this client's GET right after read version %d", uid, u.Version, got.Version)
	}
	return r
}

// posts: GET /posts?limit=N; every post has its author.
func (g *generator) posts(ctx context.Context, vu *vuser) result {
	r := vu.send(ctx, g, http.MethodGet, "/posts?limit="+strconv.Itoa(postsLimit), nil)
	if r.err != nil || r.status != http.StatusOK {
		return r
	}
	var posts []struct {
		ID     int64  `json:"id"`
		Title  string `json:"title"`
		Author struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"author"`
	}
	if err := json.Unmarshal(r.body, &posts); err != nil || len(posts) > postsLimit {
		r.problem, r.detail = "200 without a page of posts", "GET /posts: "+excerpt(r.body)
		return r
	}
	for _, p := range posts {
		if p.Author.ID == 0 || p.Author.Name == "" {
			r.problem, r.detail = "post without its author", fmt.Sprintf("GET /posts: post %d: %s", p.ID, excerpt(r.body))
			break
		}
	}
	return r
}

// pay: POST /payments with a new Idempotency-Key; replays may re-send it.
func (g *generator) pay(ctx context.Context, vu *vuser, uid int) result {
	p := &payment{
		key:    newUUID(),
		body:   fmt.Appendf(nil, `{"user_id":%d,"amount_cents":%d}`, uid, 100+rand.IntN(9900)),
		client: vu.client,
		done:   make(chan struct{}),
	}
	g.payments.add(p)
	r := g.send(ctx, vu.client, http.MethodPost, "/payments", p.body, "Idempotency-Key", p.key)
	if r.err == nil {
		p.status, p.resp, p.hdr = r.status, r.body, r.header.Get("Idempotent-Replayed") == "true"
	}
	close(p.done)
	switch {
	case r.err != nil:
	case r.status == http.StatusCreated:
		var out struct{ ID, Status string }
		if err := json.Unmarshal(r.body, &out); err != nil || out.ID == "" || out.Status == "" {
			r.problem, r.detail = "201 without a payment", "POST /payments: "+excerpt(r.body)
		}
	case r.status == http.StatusConflict && p.replayed.Load():
		r.expected = "409 overtaken by its own replay"
	}
	return r
}

// replayPayment re-sends an earlier payment's key and body; see
// compareReplay for what a replay must get.
func (g *generator) replayPayment(ctx context.Context, p *payment) result {
	p.replayed.Store(true)
	g.replay.sent.Add(1)
	r := g.send(ctx, p.client, http.MethodPost, "/payments", p.body, "Idempotency-Key", p.key)
	if r.err != nil {
		g.skipCompare("the replay got no response")
		return r
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		g.skipCompare("the original got no response in time")
		return r
	}
	switch {
	case p.status == 0:
		g.skipCompare("the original got no response")
	case !is2xx(p.status):
		g.skipCompare(fmt.Sprintf("the original got %d", p.status))
	case !is2xx(r.status):
		g.skipCompare(fmt.Sprintf("the replay got %d", r.status))
	default:
		g.replay.compared.Add(1)
		c := compareReplay(p.status, p.resp, p.hdr, r)
		if c.bodyDiffers {
			g.replay.bodyDiffers.Add(1)
		} else {
			g.replay.identical.Add(1)
		}
		if c.statusDiffers {
			g.replay.statusDiffers.Add(1)
		}
		if c.noHeader {
			g.replay.noHeader.Add(1)
		}
		if c.overtook {
			g.replay.overtook.Add(1)
		}
		if c.problem != "" {
			r.problem, r.detail = c.problem, fmt.Sprintf("POST /payments key %s: %s", p.key, c.detail)
		}
	}
	return r
}

// replayCheck is what compareReplay found.
type replayCheck struct {
	bodyDiffers, statusDiffers, noHeader bool
	overtook                             bool   // the replay ran and the original was answered from the store
	problem, detail                      string // the first problem's category; all of them
}

// compareReplay compares two successful answers to one key: the same
// bytes, the same status, and one of them (the one that did not run; the
// replay, unless it overtook the original) marked Idempotent-Replayed: true.
// Had both run, the bodies would differ (two charges).
func compareReplay(origStatus int, origBody []byte, origMarked bool, r result) replayCheck {
	var c replayCheck
	var details []string
	if !bytes.Equal(r.body, origBody) {
		c.bodyDiffers = true
		details = append(details, fmt.Sprintf("body %s, original %s", excerpt(r.body), excerpt(origBody)))
		c.problem = "replay body differs from the original"
	}
	if r.status != origStatus {
		c.statusDiffers = true
		details = append(details, fmt.Sprintf("status %d, original %d", r.status, origStatus))
		c.problem = cmp.Or(c.problem, "replay status differs from the original")
	}
	switch marked := r.header.Get("Idempotent-Replayed") == "true"; {
	case !marked && origMarked:
		c.overtook = true
	case !marked:
		c.noHeader = true
		details = append(details, "neither answer says Idempotent-Replayed: true")
		c.problem = cmp.Or(c.problem, "replay without Idempotent-Replayed: true")
	}
	c.detail = strings.Join(details, "; ")
	return c
}

func (g *generator) skipCompare(reason string) {
	g.mu.Lock()
	g.notCompared[reason]++
	g.mu.Unlock()
}

// email: POST /emails; keeps the first jobs' status URLs for the report.
func (g *generator) email(ctx context.Context, vu *vuser, uid int) result {
	body, _ := json.Marshal(map[string]string{"to": fmt.Sprintf("user%d@example.com", uid), "subject": "loadgen"})
	r := vu.send(ctx, g, http.MethodPost, "/emails", body)
	if r.err != nil || r.status != http.StatusAccepted {
		return r
	}
	var out struct {
		JobID     string `json:"job_id"`
		StatusURL string `json:"status_url"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.JobID == "" || !strings.HasPrefix(out.StatusURL, "/") {
		r.problem, r.detail = "202 without a job", "POST /emails: "+excerpt(r.body)
		return r
	}
	g.mu.Lock()
	if len(g.jobURLs) < g.cfg.JobSample {
		g.jobURLs = append(g.jobURLs, out.StatusURL)
	}
	g.mu.Unlock()
	return r
}

// record counts a result. Requests cut short by an interrupted run are
// counted as canceled, apart from the rest.
func (g *generator) record(ctx context.Context, k kind, intended time.Time, r result) {
	defer g.done.Add(1)
	if r.err != nil && ctx.Err() != nil {
		g.canceled.Add(1)
		return
	}
	lat := r.end.Sub(intended)
	g.lat[k].record(lat)
	g.all.record(lat)
	s := r.status
	if s < 100 || s > 599 {
		s = 0
	}
	g.status[k][s].Add(1)
	if s == http.StatusTooManyRequests {
		g.limited.total.Add(1)
		if r.header.Get("Retry-After") == "" {
			g.limited.noRetryAfter.Add(1)
		}
		if !hasRateLimitHeader(r.header) {
			g.limited.noRateLimit.Add(1)
		}
	}
	o, reason := classify(k, r)
	var ph *phase
	if g.cfg.ChaosStop != "" {
		switch since := intended.Sub(g.start); {
		case since < g.cfg.ChaosAt:
			ph = &g.phases[0]
		case since < g.cfg.ChaosUntil:
			ph = &g.phases[1]
		default:
			ph = &g.phases[2]
		}
		ph.lat.record(lat)
	}
	switch o {
	case outcomeOK:
		g.ok.Add(1)
		if ph != nil {
			ph.ok.Add(1)
		}
		return
	case outcomeExpected:
		g.expected.Add(1)
		if ph != nil {
			ph.expected.Add(1)
		}
	case outcomeUnexpected:
		g.unexpected.Add(1)
		if ph != nil {
			ph.unexpected.Add(1)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reasons[reasonKey{k, o, reason}]++
	if o == outcomeUnexpected && len(g.samples) < maxSamples {
		detail := r.detail
		if detail == "" && r.err != nil {
			detail = r.err.Error()
		} else if detail == "" {
			detail = excerpt(r.body)
		}
		g.samples = append(g.samples, fmt.Sprintf("%7.3fs %-8s %s: %s", intended.Sub(g.start).Seconds(), k, reason, detail))
	}
}

func hasRateLimitHeader(h http.Header) bool {
	for name := range h {
		if strings.HasPrefix(name, "Ratelimit") { // RateLimit, RateLimit-Policy, RateLimit-Remaining, ...
			return true
		}
	}
	return false
}

// progress prints a line every ProgressEvery until stop closes.
func (g *generator) progress(stop <-chan struct{}) {
	t := time.NewTicker(g.cfg.ProgressEvery)
	defer t.Stop()
	last, lastAt := int64(0), g.start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			done := g.done.Load()
			rps := float64(done-last) / now.Sub(lastAt).Seconds()
			last, lastAt = done, now
			fmt.Fprintf(g.out, "[%5.1fs] sent %d  done %d  rps %.0f  in flight %d  dropped %d  unexpected %d  expected %d  p99 %s\n",
				now.Sub(g.start).Seconds(), g.sent.Load(), done, rps, g.inflight.Load(), g.dropped.Load(),
				g.unexpected.Load(), g.expected.Load(), fmtDur(g.all.snapshot().quantile(0.99)))
		}
	}
}

// chaos POSTs /admin/chaos?query and reports whether the service did it.
func (g *generator) chaos(ctx context.Context, query string) bool {
	ctx, cancel := context.WithTimeout(ctx, max(g.cfg.Timeout, 30*time.Second)) // starting PostgreSQL takes a while
	defer cancel()
	r := g.send(ctx, g.admin, http.MethodPost, "/admin/chaos?"+query, nil)
	var line string
	if r.err != nil {
		line = fmt.Sprintf("chaos %s: %s", query, errClass(r.err))
	} else {
		line = fmt.Sprintf("chaos %s: %d %s", query, r.status, strings.TrimSpace(excerpt(r.body)))
	}
	line = fmt.Sprintf("[%5.1fs] %s", time.Since(g.start).Seconds(), line)
	fmt.Fprintln(g.out, line)
	g.mu.Lock()
	g.events = append(g.events, line)
	g.mu.Unlock()
	return r.err == nil && r.status == http.StatusOK
}

// chaosStop stops ChaosStop at ChaosAt and starts it again at ChaosUntil,
// or at once when the run is interrupted meanwhile.
func (g *generator) chaosStop(ctx context.Context) {
	if !sleepUntil(ctx, g.start.Add(g.cfg.ChaosAt)) {
		return
	}
	// Once sent, the stop must get its answer, or a stopped target could
	// be left stopped.
	if !g.chaos(context.WithoutCancel(ctx), "stop="+g.cfg.ChaosStop) {
		return
	}
	sleepUntil(ctx, g.start.Add(g.cfg.ChaosUntil))
	g.chaos(context.WithoutCancel(ctx), "start="+g.cfg.ChaosStop)
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// ---------------------------------------------------------------------------
// The summary and the report

type reasonCount struct {
	Kind    kind
	Outcome outcome
	Reason  string
	Count   int64
}

type replayStats struct {
	Sent, Compared, Identical, BodyDiffers, StatusDiffers, NoHeader int64
	Overtook                                                        int64 // the replay ran first; the original got the stored answer
	NotCompared                                                     map[string]int64
}

type phaseStats struct {
	Name                     string
	From, To                 time.Duration
	OK, Expected, Unexpected int64
	Latency                  latencyStats
}

// summary is a run's numbers; the report prints them.
type summary struct {
	Interrupted          bool
	Scheduled, Elapsed   time.Duration // how long requests were started; until the last one ended
	MaxLag               time.Duration // the scheduler's worst lateness
	Sent, Dropped        int64         // started; due but dropped (client overload)
	Completed, Canceled  int64         // got an answer or an error; cut short by an interrupt
	OK, Expected         int64
	Unexpected           int64
	Latency              [numKinds + 1]latencyStats // by kind; [allKinds] is all
	Status               [numKinds]map[int]int64    // status code (0: no response) -> count
	Reasons              []reasonCount              // expected and unexpected outcomes
	Samples              []string                   // the first unexpected errors in detail
	Replays              replayStats
	RYWChecked, RYWStale int64
	RYWReadBacks         int64 // of RYWChecked: the read-backs right after a write
	RateLimited          int64
	NoRetryAfter         int64 // 429s without Retry-After
	NoRateLimitHeader    int64 // 429s without any RateLimit* header
	Phases               []phaseStats
	Events               []string
	Jobs                 []string // lines about the sampled email jobs
	AdminStats           []string // "field value" lines
	SLO                  []string // /slo, indented and truncated
}

func (g *generator) summarize(scheduled, elapsed time.Duration, interrupted bool) summary {
	s := summary{
		Interrupted:  interrupted,
		Scheduled:    scheduled,
		Elapsed:      elapsed,
		MaxLag:       g.maxLag,
		Sent:         g.sent.Load(),
		Dropped:      g.dropped.Load(),
		Canceled:     g.canceled.Load(),
		OK:           g.ok.Load(),
		Expected:     g.expected.Load(),
		Unexpected:   g.unexpected.Load(),
		RYWChecked:   g.ryw.checked.Load(),
		RYWStale:     g.ryw.stale.Load(),
		RYWReadBacks: g.ryw.readBacks.Load(),
		RateLimited:  g.limited.total.Load(),

		NoRetryAfter:      g.limited.noRetryAfter.Load(),
		NoRateLimitHeader: g.limited.noRateLimit.Load(),
	}
	s.Completed = g.done.Load() - s.Canceled
	for k := range numKinds {
		s.Latency[k] = g.lat[k].snapshot().stats()
		s.Status[k] = map[int]int64{}
		for code := range g.status[k] {
			if n := g.status[k][code].Load(); n > 0 {
				s.Status[k][code] = n
			}
		}
	}
	s.Latency[allKinds] = g.all.snapshot().stats()
	s.Replays = replayStats{
		Sent: g.replay.sent.Load(), Compared: g.replay.compared.Load(), Identical: g.replay.identical.Load(),
		BodyDiffers: g.replay.bodyDiffers.Load(), StatusDiffers: g.replay.statusDiffers.Load(), NoHeader: g.replay.noHeader.Load(),
		Overtook: g.replay.overtook.Load(),
	}
	if g.cfg.ChaosStop != "" {
		bounds := [4]time.Duration{0, g.cfg.ChaosAt, g.cfg.ChaosUntil, g.cfg.Duration}
		for i := range g.phases {
			p := &g.phases[i]
			s.Phases = append(s.Phases, phaseStats{Name: phaseNames[i], From: bounds[i], To: bounds[i+1],
				OK: p.ok.Load(), Expected: p.expected.Load(), Unexpected: p.unexpected.Load(), Latency: p.lat.snapshot().stats()})
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, n := range g.reasons {
		s.Reasons = append(s.Reasons, reasonCount{key.kind, key.outcome, key.reason, n})
	}
	slices.SortFunc(s.Reasons, func(a, b reasonCount) int {
		if a.Kind != b.Kind {
			return int(a.Kind - b.Kind)
		}
		return int(b.Count - a.Count)
	})
	s.Samples = slices.Clone(g.samples)
	s.Replays.NotCompared = maps.Clone(g.notCompared)
	s.Events = slices.Clone(g.events)
	return s
}

// lookUpJobs GETs the sampled email jobs once and counts their states.
func (g *generator) lookUpJobs(ctx context.Context) []string {
	g.mu.Lock()
	urls := slices.Clone(g.jobURLs)
	g.mu.Unlock()
	if len(urls) == 0 {
		return nil
	}
	states := map[string]int{}
	attempts, withError := 0, 0
	for _, u := range urls {
		rctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
		r := g.send(rctx, g.admin, http.MethodGet, u, nil)
		cancel()
		var j struct {
			ID        string `json:"id"`
			State     string `json:"state"`
			Attempts  int    `json:"attempts"`
			LastError string `json:"last_error"`
		}
		switch {
		case r.err != nil:
			states["(no answer: "+errClass(r.err)+")"]++
		case r.status != http.StatusOK:
			states[fmt.Sprintf("(GET %d)", r.status)]++
		case json.Unmarshal(r.body, &j) != nil || j.State == "":
			states["(unreadable)"]++
		default:
			states[j.State]++
			attempts += j.Attempts
			if j.LastError != "" {
				withError++
			}
		}
	}
	var parts []string
	for _, st := range sortedKeys(states) {
		parts = append(parts, fmt.Sprintf("%s %d", st, states[st]))
	}
	return []string{
		fmt.Sprintf("the first %d jobs, looked up now: %s", len(urls), strings.Join(parts, ", ")),
		fmt.Sprintf("attempts %d in all; %d with a last_error", attempts, withError),
	}
}

// adminStats GETs /admin/stats and flattens it into "field value" lines,
// cache_hit_ratio first.
func (g *generator) adminStats(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	r := g.send(ctx, g.admin, http.MethodGet, "/admin/stats", nil)
	if r.err != nil || r.status != http.StatusOK {
		return []string{"unavailable: " + answer(r)}
	}
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return []string{"unreadable: " + excerpt(r.body)}
	}
	var lines []string
	var flatten func(prefix string, v any)
	flatten = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if len(v) > 0 {
				for _, k := range sortedKeys(v) {
					flatten(prefix+"."+k, v[k])
				}
				return
			}
		case []any:
			if len(v) > 0 && !slices.ContainsFunc(v, func(e any) bool { _, ok := e.(map[string]any); return !ok }) {
				for i, e := range v {
					flatten(fmt.Sprintf("%s[%d]", prefix, i), e)
				}
				return
			}
		}
		b, _ := json.Marshal(v)
		lines = append(lines, fmt.Sprintf("%s\t%s", strings.TrimPrefix(prefix, "."), b))
	}
	keys := sortedKeys(m)
	if i := slices.Index(keys, "cache_hit_ratio"); i > 0 {
		keys = append(append([]string{"cache_hit_ratio"}, keys[:i]...), keys[i+1:]...)
	}
	for _, k := range keys {
		flatten("."+k, m[k])
	}
	return lines
}

// slo GETs /slo: a table of the objectives that saw traffic when the
// answer has the slo package's shape, else the JSON indented; either cut
// to about 40 lines.
func (g *generator) slo(ctx context.Context) []string {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	r := g.send(ctx, g.admin, http.MethodGet, "/slo", nil)
	if r.err != nil || r.status != http.StatusOK {
		return []string{"unavailable: " + answer(r)}
	}
	lines, err := sloLines(r.body)
	if err != nil {
		return []string{"unreadable: " + excerpt(r.body)}
	}
	const maxLines = 40
	if len(lines) > maxLines {
		lines = append(lines[:maxLines], fmt.Sprintf("... (%d more lines: GET %s/slo)", len(lines)-maxLines, g.base))
	}
	return lines
}

func sloLines(body []byte) ([]string, error) {
	var doc struct {
		Objectives []struct {
			Name            string   `json:"name"`
			Target          *float64 `json:"target"`
			Good            float64  `json:"good"`
			Total           *float64 `json:"total"`
			BudgetRemaining float64  `json:"budget_remaining"`
			Alerts          []struct {
				Name   string `json:"name"`
				Firing bool   `json:"firing"`
			} `json:"alerts"`
		} `json:"objectives"`
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Objectives) > 0 {
		var buf bytes.Buffer
		tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "objective\ttarget\tgood/total\tbudget left\tfiring")
		idle, known := 0, true
		for _, o := range doc.Objectives {
			if o.Name == "" || o.Target == nil || o.Total == nil {
				known = false
				break
			}
			if *o.Total == 0 {
				idle++
				continue
			}
			var firing []string
			for _, a := range o.Alerts {
				if a.Firing {
					firing = append(firing, a.Name)
				}
			}
			fmt.Fprintf(tw, "%s\t%g\t%.0f/%.0f\t%.1f%%\t%s\n", o.Name, *o.Target, o.Good, *o.Total, 100*o.BudgetRemaining, cmp.Or(strings.Join(firing, ","), "-"))
		}
		if known {
			tw.Flush()
			lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
			if idle > 0 {
				lines = append(lines, fmt.Sprintf("(%d objectives without traffic left out)", idle))
			}
			return lines, nil
		}
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(body), "", "  "); err != nil {
		return nil, err
	}
	return strings.Split(buf.String(), "\n"), nil
}

func writeReport(w io.Writer, cfg config, s summary) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\n== report ==\n")
	if s.Interrupted {
		p("INTERRUPTED after %.1fs: the numbers cover what ran\n", s.Scheduled.Seconds())
	}
	p("requests    %d sent, %d completed, %d dropped (client overload), %d canceled\n", s.Sent, s.Completed, s.Dropped, s.Canceled)
	p("throughput  %.1f req/s started (target %g), %.1f req/s completed (%d in %.2fs)\n",
		float64(s.Sent)/s.Scheduled.Seconds(), cfg.Rate, float64(s.Completed)/s.Elapsed.Seconds(), s.Completed, s.Elapsed.Seconds())
	p("scheduler   latency counts from each request's intended start; worst start lateness %s\n", fmtDur(s.MaxLag))
	if s.Dropped > 0 {
		p("WARNING     %d requests were due while %d were in flight and were dropped: the offered load was lower than asked\n", s.Dropped, cfg.MaxInflight)
	}
	p("outcomes    %d ok, %d expected, %d unexpected\n", s.OK, s.Expected, s.Unexpected)

	p("\nlatency\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  %-9s\tcount\tp50\tp95\tp99\tmax\t\n", "")
	row := func(name string, l latencyStats) {
		fmt.Fprintf(tw, "  %-9s\t%d\t%s\t%s\t%s\t%s\t\n", name, l.Count, fmtDur(l.P50), fmtDur(l.P95), fmtDur(l.P99), fmtDur(l.Max))
	}
	row("all", s.Latency[allKinds])
	for k := range numKinds {
		if s.Latency[k].Count > 0 {
			row(k.String(), s.Latency[k])
		}
	}
	tw.Flush()

	p("\nstatus codes\n")
	for k := range numKinds {
		if len(s.Status[k]) == 0 {
			continue
		}
		var parts []string
		for _, code := range sortedKeys(s.Status[k]) {
			name := strconv.Itoa(code)
			if code == 0 {
				name = "none"
			}
			parts = append(parts, fmt.Sprintf("%s=%d", name, s.Status[k][code]))
		}
		p("  %-9s %s\n", k, strings.Join(parts, " "))
	}

	reasons := func(title string, o outcome) {
		p("\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		n := 0
		for _, r := range s.Reasons {
			if r.Outcome == o {
				fmt.Fprintf(tw, "  %s\t%s\t%d\n", r.Kind, r.Reason, r.Count)
				n++
			}
		}
		tw.Flush()
		if n == 0 {
			p("  none\n")
		}
	}
	reasons("expected outcomes (not errors)", outcomeExpected)
	reasons("UNEXPECTED errors", outcomeUnexpected)
	if len(s.Samples) > 0 {
		p("  the first %d, by intended start:\n", len(s.Samples))
		for _, l := range s.Samples {
			p("    %s\n", l)
		}
	}

	r := s.Replays
	p("\npayment replays (same Idempotency-Key and body)\n")
	p("  sent %d, compared %d: identical %d, body differs %d, status differs %d, without Idempotent-Replayed: true %d\n",
		r.Sent, r.Compared, r.Identical, r.BodyDiffers, r.StatusDiffers, r.NoHeader)
	if r.Overtook > 0 {
		p("  %d replays overtook their original (the replay ran; the original got the stored answer)\n", r.Overtook)
	}
	if len(r.NotCompared) > 0 {
		var parts []string
		for _, k := range sortedKeys(r.NotCompared) {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.NotCompared[k]))
		}
		p("  not compared: %s\n", strings.Join(parts, ", "))
	}

	p("\nread-your-writes\n")
	if s.RYWChecked == 0 {
		p("  not checked: no read of a user this client had written returned (writes must return \"version\")\n")
	} else {
		p("  %d reads of users the same client wrote before (%d of them read-backs right after the write): %d stale\n", s.RYWChecked, s.RYWReadBacks, s.RYWStale)
	}

	if s.RateLimited > 0 {
		p("\nrate limiting\n  %d answered 429: %d without Retry-After, %d without RateLimit headers\n",
			s.RateLimited, s.NoRetryAfter, s.NoRateLimitHeader)
	}

	if len(s.Events) > 0 || len(s.Phases) > 0 {
		p("\nchaos\n")
		for _, e := range s.Events {
			p("  %s\n", e)
		}
		if len(s.Phases) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "  %-13s\tfrom\tto\tok\texpected\tunexpected\tp50\tp99\t\n", cfg.ChaosStop)
			for _, ph := range s.Phases {
				fmt.Fprintf(tw, "  %-13s\t%v\t%v\t%d\t%d\t%d\t%s\t%s\t\n", ph.Name, ph.From, ph.To, ph.OK, ph.Expected, ph.Unexpected,
					fmtDur(ph.Latency.P50), fmtDur(ph.Latency.P99))
			}
			tw.Flush()
		}
	}

	if len(s.Jobs) > 0 {
		p("\nemail jobs\n")
		for _, l := range s.Jobs {
			p("  %s\n", l)
		}
	}
	p("\n/admin/stats\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, l := range s.AdminStats {
		fmt.Fprintf(tw, "  %s\n", l)
	}
	tw.Flush()
	p("\n/slo\n")
	for _, l := range s.SLO {
		p("  %s\n", l)
	}

	if s.Unexpected > 0 {
		p("\nRESULT: FAIL, %d unexpected errors\n", s.Unexpected)
	} else {
		p("\nRESULT: PASS, no unexpected errors\n")
	}
}

// ---------------------------------------------------------------------------
// Helpers

// lockedWriter serializes the progress, chaos and report lines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	crand.Read(b[:]) // never fails (crypto/rand.Read)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func is2xx(status int) bool { return status >= 200 && status < 300 }

// excerpt is a body cut to one short line.
func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 160 {
		s = s[:160] + "..."
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

func answer(r result) string {
	if r.err != nil {
		return errClass(r.err)
	}
	return fmt.Sprintf("%d %s", r.status, excerpt(r.body))
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func sortedKeys[K interface{ ~int | ~string }, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
