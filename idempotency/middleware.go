package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/httpx"
)

// Response is an HTTP response as stored for replay.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// WriteTo writes r to w.
func (r Response) WriteTo(w http.ResponseWriter) {
	for k, vs := range r.Header {
		w.Header()[k] = slices.Clone(vs)
	}
	w.WriteHeader(r.Status)
	_, _ = w.Write(r.Body)
}

const responseV1 = 1

// EncodeResponse is the stored form of r (for Stores that complete a key
// inside a transaction, like idempotencypg).
func EncodeResponse(r Response) []byte {
	b := []byte{responseV1}
	b = binary.AppendUvarint(b, uint64(r.Status))
	b = binary.AppendUvarint(b, uint64(len(r.Header)))
	for k, vs := range r.Header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return append(b, r.Body...)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

var errResponse = errors.New("idempotency: stored result is not a response")

// decodeResponse reverses EncodeResponse.
func decodeResponse(b []byte) (Response, error) {
	var r Response
	if len(b) < 1 || b[0] != responseV1 {
		return r, errResponse
	}
	b = b[1:]
	num := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	str := func() (string, bool) {
		n, ok := num()
		if !ok || n > uint64(len(b)) {
			return "", false
		}
		s := string(b[:n])
		b = b[n:]
		return s, true
	}
	status, ok := num()
	if !ok || status < 100 || status > 999 {
		return r, errResponse
	}
	r.Status = int(status)
	nh, ok := num()
	if !ok || nh > uint64(len(b)) {
		return r, errResponse
	}
	r.Header = make(http.Header, nh)
	for i := uint64(0); i < nh; i++ {
		k, ok := str()
		if !ok {
			return r, errResponse
		}
		nv, ok := num()
		if !ok || nv > uint64(len(b))+1 {
			return r, errResponse
		}
		for j := uint64(0); j < nv; j++ {
			v, ok := str()
			if !ok {
				return r, errResponse
			}
			r.Header[k] = append(r.Header[k], v)
		}
	}
	r.Body = append([]byte(nil), b...)
	return r, nil
}

// HTTPOptions configures NewHTTP. Scope (or, explicitly,
// Unscoped) is required; every other field has a default: keys optional,
// POST and PATCH, an in-process MemoryStore.
type HTTPOptions struct {
	// Store keeps the records. Default: a new MemoryStore (one process
	// only).
	Store Store
	// Required answers 400 to a request without an Idempotency-Key
	// header. Default: false, such a request is served as it is.
	Required bool
	// Methods are the methods keys apply to. Default: POST and PATCH.
	Methods []string
	// Scope is the caller's identity (the authenticated user, tenant or
	// API client id), part of the key: two callers sending the same key
	// neither collide nor read each other's responses (the draft's
	// security considerations ask for such composite keys). It must come
	// from something the caller cannot forge (the authenticated
	// principal, not a header the client sets freely). Requests for which
	// it returns "" share one key space. Required unless Unscoped is set:
	// NewHTTP refuses Options with neither.
	Scope func(*http.Request) string
	// Unscoped declares that keys are NOT scoped by caller: every client
	// of the route shares one key space, so a client that sends (or
	// guesses) another client's key and body receives that client's
	// stored response, and a key collision between two clients makes one
	// of them get 409 or 422 for a request it never sent. Set it only for
	// a route with one caller (a single internal service) or where
	// responses hold nothing private. Default: false; setting it together
	// with Scope is an error.
	Unscoped bool
	// Route names the operation, part of the key. Default: the URL path.
	Route func(*http.Request) string
	// FingerprintHeaders are request headers that, with the method, path
	// and body, make up the request's fingerprint. Default: none.
	FingerprintHeaders []string
	// MaxBodyBytes bounds the request body read for the fingerprint; a
	// larger body gets 413. Default: 1 MiB.
	MaxBodyBytes int64
	// MaxResponseBytes bounds the response body stored; a larger response
	// is served but not stored (the key is released, so a retry runs the
	// handler again). Default: 1 MiB.
	MaxResponseBytes int
	// StoreHeaders are the response headers stored and replayed.
	// Default: Content-Type, Content-Location, Location, ETag,
	// Cache-Control.
	StoreHeaders []string
	// StoreStatus reports whether a response with status code is stored
	// and replayed to retries; when it returns false the key is released
	// instead, so a retry with the same key runs the handler again. It is
	// asked about codes below 500 only: 5xx responses are never stored
	// (the client may retry). Default: DefaultStoreStatus, which stores
	// 2xx, 3xx and 4xx except 408, 409, 425 and 429 (a timeout, a
	// conflict, too early, throttled: answers about this attempt, not
	// results of the request; Stripe stores nothing for a request that
	// conflicted).
	StoreStatus func(code int) bool
	// NoStore4xx also releases the key after every 4xx response, whatever
	// StoreStatus says, so the client can fix the request and retry with
	// the same key. Default: false.
	NoStore4xx bool
	// TTL is how long a completed response is kept. Default: 24h.
	TTL time.Duration
	// Lease is how long a running request holds its key without a
	// heartbeat (renewed every Lease/3 while the handler runs). Default:
	// 1m.
	Lease time.Duration
	// Logger receives Store failures and lost leases. Default: discard.
	Logger *slog.Logger
}

// HTTP is the Idempotency-Key middleware (draft-ietf-httpapi-
// idempotency-key-header, with Stripe's semantics): its Middleware method
// wraps a handler. It is safe for concurrent use.
type HTTP struct {
	o       HTTPOptions
	methods map[string]bool
	stored  map[string]bool

	executed, replayed, conflicts, mismatches, badKeys, unavailable, released, leaseLost atomic.Uint64
}

// NewHTTP returns the middleware, or an error naming the bad option.
func NewHTTP(o HTTPOptions) (*HTTP, error) {
	g := GuardOptions{Store: o.Store, TTL: o.TTL, Lease: o.Lease, Logger: o.Logger}
	if err := g.defaults("HTTPOptions"); err != nil {
		return nil, err
	}
	o.Store, o.TTL, o.Lease, o.Logger = g.Store, g.TTL, g.Lease, g.Logger
	if o.Methods == nil {
		o.Methods = []string{http.MethodPost, http.MethodPatch}
	}
	if o.Route == nil {
		o.Route = func(r *http.Request) string { return r.URL.Path }
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.MaxResponseBytes == 0 {
		o.MaxResponseBytes = 1 << 20
	}
	if o.StoreStatus == nil {
		o.StoreStatus = DefaultStoreStatus
	}
	if o.StoreHeaders == nil {
		o.StoreHeaders = []string{"Content-Type", "Content-Location", "Location", "ETag", "Cache-Control"}
	}
	switch {
	case o.Scope == nil && !o.Unscoped:
		return nil, fmt.Errorf("%w: HTTPOptions.Scope is required (a func returning the caller's identity, which becomes part of every key); set HTTPOptions.Unscoped to share one key space between all callers instead", ErrInvalid)
	case o.Scope != nil && o.Unscoped:
		return nil, fmt.Errorf("%w: HTTPOptions.Scope and HTTPOptions.Unscoped are both set; keep one", ErrInvalid)
	case o.MaxBodyBytes < 0:
		return nil, fmt.Errorf("%w: HTTPOptions.MaxBodyBytes must be > 0, got %d", ErrInvalid, o.MaxBodyBytes)
	case o.MaxResponseBytes < 0:
		return nil, fmt.Errorf("%w: HTTPOptions.MaxResponseBytes must be > 0, got %d", ErrInvalid, o.MaxResponseBytes)
	}
	m := &HTTP{o: o, methods: map[string]bool{}, stored: map[string]bool{}}
	for _, meth := range o.Methods {
		m.methods[meth] = true
	}
	for _, h := range o.StoreHeaders {
		m.stored[http.CanonicalHeaderKey(h)] = true
	}
	return m, nil
}

// parseKey parses an Idempotency-Key header value and returns the key,
// or an error saying what is wrong. Two forms are accepted:
//
//   - the draft's form, a structured-field String (RFC 8941 section 3.3.3):
//     in double quotes, of printable ASCII including spaces, with \" and
//     \\ as the only escapes, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324"
//     or "a \"quoted\" key" (parameters after the string are not
//     accepted);
//   - the bare form most clients send: printable ASCII without spaces,
//     double quotes or backslashes, e.g. 8e03978e-40d5-43e8-bc93-6894a57f9324.
//
// Both forms of the same characters are the same key. Spaces around the
// value are ignored. The key has 1 to 255 characters (after unescaping).
func parseKey(v string) (string, error) {
	v = strings.Trim(v, " \t")
	var key string
	if strings.HasPrefix(v, `"`) {
		k, err := parseSFString(v)
		if err != nil {
			return "", err
		}
		key = k
	} else {
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return "", fmt.Errorf("the Idempotency-Key header has a character that is not allowed at position %d: send a quoted string (\"...\", with \\\" and \\\\ escapes) or printable ASCII without spaces, quotes or backslashes (a UUID is ideal)", i)
			}
		}
		key = v
	}
	switch {
	case key == "":
		return "", errors.New("the Idempotency-Key header is empty")
	case len(key) > 255:
		return "", fmt.Errorf("the Idempotency-Key header is %d characters long; at most 255 are allowed", len(key))
	}
	return key, nil
}

// parseSFString parses v, which starts with a double quote, as an RFC 8941
// String and returns its content.
func parseSFString(v string) (string, error) {
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\':
			i++
			if i == len(v) || (v[i] != '"' && v[i] != '\\') {
				return "", fmt.Errorf("the Idempotency-Key header has a backslash at position %d that escapes neither a double quote nor a backslash", i-1)
			}
			b.WriteByte(v[i])
		case c == '"':
			if i != len(v)-1 {
				return "", fmt.Errorf("the Idempotency-Key header has characters after its closing double quote at position %d: send one quoted string", i)
			}
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", fmt.Errorf("the Idempotency-Key header has a character that is not allowed at position %d: a quoted key is printable ASCII", i)
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("the Idempotency-Key header opens a double quote it does not close")
}

type execKey struct{}

// Execution is the first run of a keyed request, found in its ctx with
// ExecutionFrom. A Store that completes a key inside the handler's own
// database transaction (idempotencypg.InTx) uses it, so the effect and the
// stored response commit together.
type Execution struct {
	// Key is the scoped key; Token fences its lease.
	Key, Token string
	// TTL is how long the completed record is kept.
	TTL       time.Duration
	completed atomic.Bool
}

// MarkCompleted records that the key was completed in the handler's
// transaction; the middleware then stores nothing itself.
func (e *Execution) MarkCompleted() { e.completed.Store(true) }

// ExecutionFrom returns the Execution of the request that ctx belongs to.
func ExecutionFrom(ctx context.Context) (*Execution, bool) {
	e, ok := ctx.Value(execKey{}).(*Execution)
	return e, ok
}

// Middleware wraps next: a request of a keyed method with an
// Idempotency-Key runs next once; its repeats get the stored response, a
// 409, 422 or 400 (see the package doc).
func (m *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		vals := r.Header.Values("Idempotency-Key")
		if !m.methods[r.Method] || (len(vals) == 0 && !m.o.Required) {
			next.ServeHTTP(w, r)
			return
		}
		if len(vals) != 1 {
			m.badKeys.Add(1)
			typ, msg := ProblemKeyMissing, "this endpoint requires an Idempotency-Key header"
			if len(vals) > 1 {
				typ, msg = ProblemKeyInvalid, "send one Idempotency-Key header, not "+strconv.Itoa(len(vals))
			}
			problem(w, http.StatusBadRequest, typ, msg)
			return
		}
		raw := vals[0]
		key, err := parseKey(raw)
		if err != nil {
			m.badKeys.Add(1)
			problem(w, http.StatusBadRequest, ProblemKeyInvalid, err.Error())
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, m.o.MaxBodyBytes+1))
		if err != nil {
			problem(w, http.StatusBadRequest, ProblemBodyUnreadable, "cannot read the request body: "+err.Error())
			return
		}
		if int64(len(body)) > m.o.MaxBodyBytes {
			problem(w, http.StatusRequestEntityTooLarge, ProblemBodyTooLarge, "the request body is over "+strconv.FormatInt(m.o.MaxBodyBytes, 10)+" bytes")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		scoped := m.scopedKey(r, key)
		out, err := m.o.Store.Begin(r.Context(), scoped, m.fingerprint(r, body), m.o.Lease, m.o.TTL)
		if err != nil {
			m.unavailable.Add(1)
			m.o.Logger.LogAttrs(r.Context(), slog.LevelError, "idempotency: the store failed; refusing the request rather than risk running it twice", slog.Any("error", err))
			w.Header().Set("Retry-After", "1")
			problem(w, http.StatusServiceUnavailable, ProblemUnavailable, "idempotency keys are unavailable; retry later with the same key")
			return
		}
		switch out.Status {
		case Completed:
			resp, err := decodeResponse(out.Result)
			if err != nil {
				problem(w, http.StatusInternalServerError, ProblemStoredResponseUnreadable, "the stored response for this key is unreadable")
				return
			}
			m.replayed.Add(1)
			w.Header().Set("Idempotent-Replayed", "true")
			resp.WriteTo(w)
			return
		case Mismatch:
			m.mismatches.Add(1)
			problem(w, http.StatusUnprocessableEntity, ProblemKeyReused, "this Idempotency-Key was used with a different request; use a new key for a new request")
			return
		case Running:
			m.conflicts.Add(1)
			w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64((out.RetryAfter+time.Second-1)/time.Second)), 10))
			problem(w, http.StatusConflict, ProblemRequestInFlight, "a request with this Idempotency-Key is still being processed; retry later")
			return
		}
		m.run(w, r, next, scoped, out.Token)
	})
}

func (m *HTTP) run(w http.ResponseWriter, r *http.Request, next http.Handler, key, token string) {
	m.executed.Add(1)
	exec := &Execution{Key: key, Token: token, TTL: m.o.TTL}
	// The handler's ctx ends, with cause ErrLeaseLost, if the heartbeat
	// finds the lease lost: another request may be running the key now,
	// so this one must stop its work. A lease lost once the handler has
	// completed the key in its own transaction (InTx) is no loss.
	ctx, cancel := context.WithCancelCause(context.WithValue(r.Context(), execKey{}, exec))
	rec := newRecorder(w, m.o.MaxResponseBytes)
	hb := startHeartbeat(m.o.Store, key, token, m.o.Lease, m.o.Logger, func() {
		if !exec.completed.Load() {
			m.leaseLost.Add(1)
			cancel(ErrLeaseLost)
		}
	})
	bg := context.WithoutCancel(ctx)
	finished := false
	defer func() {
		hb.Stop()
		cancel(nil)
		if finished {
			return
		}
		// The handler panicked: release the key so a retry runs again.
		m.release(bg, key, token)
	}()
	next.ServeHTTP(rec.w, r.WithContext(ctx))
	finished = true
	hb.Stop()
	if exec.completed.Load() {
		return
	}
	status := rec.x.Status()
	if !m.stores(status) || rec.over || rec.x.Hijacked() {
		m.release(bg, key, token)
		return
	}
	resp := Response{Status: status, Header: http.Header{}, Body: rec.body.Bytes()}
	for k, vs := range rec.headers() {
		if m.stored[k] {
			resp.Header[k] = vs
		}
	}
	if err := m.o.Store.Complete(bg, key, token, EncodeResponse(resp), m.o.TTL); err != nil {
		m.o.Logger.LogAttrs(ctx, slog.LevelWarn, "idempotency: the response was not stored; a retry runs the handler again", slog.Any("error", err))
	}
}

// stores reports whether a response with status is stored (see
// HTTPOptions.StoreStatus).
func (m *HTTP) stores(status int) bool {
	switch {
	case status >= 500:
		return false
	case status >= 400 && m.o.NoStore4xx:
		return false
	}
	return m.o.StoreStatus(status)
}

// DefaultStoreStatus is the default HTTPOptions.StoreStatus: it
// stores every status below 500 except 408 Request Timeout, 409 Conflict,
// 425 Too Early and 429 Too Many Requests, which say the attempt was
// not processed (timed out, conflicted, came too early, was throttled)
// and must not be replayed to the retry that follows.
func DefaultStoreStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusConflict, http.StatusTooEarly, http.StatusTooManyRequests:
		return false
	}
	return code < 500
}

func (m *HTTP) release(ctx context.Context, key, token string) {
	m.released.Add(1)
	if err := m.o.Store.Release(ctx, key, token); err != nil && !errors.Is(err, ErrLeaseLost) {
		m.o.Logger.LogAttrs(ctx, slog.LevelWarn, "idempotency: cannot release a key; it is retried once its lease expires", slog.Any("error", err))
	}
}

// scopedKey is a hash of the caller, method, route and key, so keys of
// different callers or operations never meet and any key is safe in any
// Store.
func (m *HTTP) scopedKey(r *http.Request, key string) string {
	h := sha256.New()
	scope := ""
	if m.o.Scope != nil {
		scope = m.o.Scope(r)
	}
	for _, s := range []string{scope, r.Method, m.o.Route(r), key} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fingerprint is a hash of the method, path and query, the chosen headers
// and the body.
func (m *HTTP) fingerprint(r *http.Request, body []byte) string {
	h := sha256.New()
	h.Write([]byte(r.Method + "\x00" + r.URL.RequestURI() + "\x00"))
	for _, name := range m.o.FingerprintHeaders {
		for _, v := range r.Header.Values(name) {
			h.Write([]byte(name + ":" + v + "\x00"))
		}
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// The type URIs of the middleware's problem details (RFC 9457), one per
// error, stable across versions: clients may match on them. They identify
// the problem and are documented here; they need not resolve. Every
// error response is application/problem+json with type, title, status and
// detail members, as in the examples of
// draft-ietf-httpapi-idempotency-key-header.
const (
	// ProblemKeyMissing (400): the endpoint requires an Idempotency-Key
	// header and the request has none.
	ProblemKeyMissing = "https://scalekit.dev/problems/idempotency-key-missing"
	// ProblemKeyInvalid (400): the Idempotency-Key header is malformed,
	// too long, or sent more than once (see the package doc for the forms
	// accepted).
	ProblemKeyInvalid = "https://scalekit.dev/problems/idempotency-key-invalid"
	// ProblemKeyReused (422): the key was used with a different request.
	ProblemKeyReused = "https://scalekit.dev/problems/idempotency-key-reused"
	// ProblemRequestInFlight (409, with Retry-After): a request with this
	// key is still being processed.
	ProblemRequestInFlight = "https://scalekit.dev/problems/idempotency-request-in-flight"
	// ProblemUnavailable (503, with Retry-After): the Store failed, so the
	// request was not run (fail closed).
	ProblemUnavailable = "https://scalekit.dev/problems/idempotency-unavailable"
	// ProblemBodyTooLarge (413): the request body is over
	// HTTPOptions.MaxBodyBytes.
	ProblemBodyTooLarge = "https://scalekit.dev/problems/idempotency-body-too-large"
	// ProblemBodyUnreadable (400): the request body could not be read.
	ProblemBodyUnreadable = "https://scalekit.dev/problems/idempotency-body-unreadable"
	// ProblemStoredResponseUnreadable (500): the response stored for the
	// key cannot be decoded.
	ProblemStoredResponseUnreadable = "https://scalekit.dev/problems/idempotency-stored-response-unreadable"
)

var problemTitles = map[string]string{
	ProblemKeyMissing:               "Idempotency-Key is missing",
	ProblemKeyInvalid:               "Idempotency-Key is invalid",
	ProblemKeyReused:                "Idempotency-Key is already used",
	ProblemRequestInFlight:          "A request is outstanding for this Idempotency-Key",
	ProblemUnavailable:              "Idempotency keys are unavailable",
	ProblemBodyTooLarge:             "Request body too large",
	ProblemBodyUnreadable:           "Request body unreadable",
	ProblemStoredResponseUnreadable: "Stored response unreadable",
}

// Problem is the body of the middleware's error responses, an RFC 9457
// problem details object.
type Problem struct {
	// Type is one of the Problem... URIs.
	Type string `json:"type"`
	// Title is the short summary of Type.
	Title string `json:"title"`
	// Status is the response's status code.
	Status int `json:"status"`
	// Detail says what is wrong with this request and what to do.
	Detail string `json:"detail"`
}

func problem(w http.ResponseWriter, status int, typ, detail string) {
	body, _ := json.Marshal(Problem{Type: typ, Title: problemTitles[typ], Status: status, Detail: detail})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// recorder passes the response through and keeps a copy of it, up to max
// body bytes (over is set past that).
type recorder struct {
	x      *httpx.Writer
	w      http.ResponseWriter
	header http.Header
	body   bytes.Buffer
	max    int
	over   bool
}

func newRecorder(w http.ResponseWriter, max int) *recorder {
	c := &recorder{max: max}
	c.x, c.w = httpx.Wrap(w)
	c.x.BeforeHeader = func(int) { c.header = c.x.Header().Clone() }
	c.x.Body = func(p []byte) {
		if c.over {
			return
		}
		if c.body.Len()+len(p) > c.max {
			c.over = true
			c.body.Reset()
			return
		}
		c.body.Write(p)
	}
	return c
}

// headers are the response's headers as sent, or as they stand when the
// handler returned without writing (net/http sends them then).
func (c *recorder) headers() http.Header {
	if c.header == nil {
		return c.x.Header()
	}
	return c.header
}

// HTTPStats is a snapshot of the middleware's counters.
type HTTPStats struct {
	// Executed counts first runs; Replayed stored responses served.
	Executed, Replayed uint64
	// Conflicts (409), Mismatches (422) and BadKeys (400) count refusals;
	// Unavailable the 503s of a failing Store.
	Conflicts, Mismatches, BadKeys, Unavailable uint64
	// Released counts keys given back after a 5xx, a panic or an oversized
	// response, so a retry runs again.
	Released uint64
	// LeaseLost counts handlers whose lease was found lost while they ran
	// (their ctx was cancelled with cause ErrLeaseLost).
	LeaseLost uint64
}

// Stats returns a snapshot of the counters.
func (m *HTTP) Stats() HTTPStats {
	return HTTPStats{Executed: m.executed.Load(), Replayed: m.replayed.Load(), Conflicts: m.conflicts.Load(), Mismatches: m.mismatches.Load(),
		BadKeys: m.badKeys.Load(), Unavailable: m.unavailable.Load(), Released: m.released.Load(), LeaseLost: m.leaseLost.Load()}
}
