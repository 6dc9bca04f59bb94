package shard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/scalekit-go/scalekit/dbrouter"
)

// Tokens are read-your-writes tokens by cluster name: the user's last
// write on each cluster (dbrouter.Token). Their text form (String,
// ParseTokens) carries them in one header or cookie value.
type Tokens map[string]dbrouter.Token

// MaxTokensLen is the longest text form ParseTokens reads: a longer value
// is ignored whole (a cookie holds 4096 bytes).
const MaxTokensLen = 4096

// String encodes t as "name=token&name=token", sorted by cluster name,
// each name and token percent-escaped where it holds a byte outside
// [A-Za-z0-9-._~/@:] (so the value is safe in a cookie and a header).
// Zero tokens are left out; an empty set encodes as "".
func (t Tokens) String() string {
	names := make([]string, 0, len(t))
	for n, tok := range t {
		if !tok.IsZero() {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte('&')
		}
		escape(&b, n)
		b.WriteByte('=')
		escape(&b, t[n].String())
	}
	return b.String()
}

func safeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("-._~/@:", c) >= 0
}

func escape(b *strings.Builder, s string) {
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		if c := s[i]; safeByte(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
}

// unescape decodes escape's form strictly: only safe bytes and %XX.
func unescape(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '%' && !safeByte(c) {
			return "", false
		}
	}
	u, err := url.PathUnescape(s)
	return u, err == nil
}

// ParseTokens decodes Tokens.String's form. It is strict and never
// panics: a value longer than MaxTokensLen is refused whole (nil Tokens
// and an error); otherwise each entry that is not "name=token" with a
// non-empty name and a token dbrouter.ParseToken reads is skipped, and
// the error (errors.Join, one per skipped entry) says why, next to the
// entries that were read. A name given twice has its tokens merged
// (dbrouter.Token.Merge). Names are not checked against any Router.
func ParseTokens(s string) (Tokens, error) {
	if len(s) > MaxTokensLen {
		return nil, fmt.Errorf("shard: tokens value of %d bytes ignored, want at most %d", len(s), MaxTokensLen)
	}
	t := Tokens{}
	if s == "" {
		return t, nil
	}
	var errs []error
	for i, e := range strings.Split(s, "&") {
		n, v, ok := strings.Cut(e, "=")
		if !ok {
			errs = append(errs, fmt.Errorf("shard: tokens entry %d ignored: no '='", i))
			continue
		}
		name, ok1 := unescape(n)
		ts, ok2 := unescape(v)
		if !ok1 || !ok2 || name == "" {
			errs = append(errs, fmt.Errorf("shard: tokens entry %d ignored: want name=token, percent-escaped, with a name", i))
			continue
		}
		tok, err := dbrouter.ParseToken(ts)
		if err != nil {
			errs = append(errs, fmt.Errorf("shard: tokens entry %d (cluster %q) ignored: %w", i, name, err))
			continue
		}
		if !tok.IsZero() {
			t[name] = t[name].Merge(tok)
		}
	}
	return t, errors.Join(errs...)
}

// Merge returns the union of t and u, a name in both having its tokens
// merged (dbrouter.Token.Merge). t and u are not changed.
func (t Tokens) Merge(u Tokens) Tokens {
	out := make(Tokens, len(t)+len(u))
	for n, tok := range t {
		out[n] = tok
	}
	for n, tok := range u {
		out[n] = out[n].Merge(tok)
	}
	return out
}

// Newest returns the max tokens of t with the latest Time (ties: the
// higher LSN, then the cluster name), all of t when it has no more. A
// dropped cluster's token is forgotten, so its user's next reads there
// may come from a replica that has not replayed their write (bounded by
// the replicas' lag). t is not changed. (HTTP drops tokens every replica
// has replayed before it drops by age.)
func (t Tokens) Newest(max int) Tokens {
	if len(t) <= max {
		return t.Merge(nil)
	}
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		ta, tb := t[a], t[b]
		if c := tb.Time.Compare(ta.Time); c != 0 {
			return c
		}
		if c := cmp.Compare(tb.LSN, ta.LSN); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	out := make(Tokens, max)
	for _, n := range names[:max] {
		out[n] = t[n]
	}
	return out
}

// sessions is one request's (or job's) read-your-writes state on every
// cluster of a Router: the tokens it started from and, per cluster used,
// a dbrouter session (made on first use, then shared by every ctx of the
// cluster).
type sessions struct {
	r  *Router
	mu sync.Mutex
	in Tokens                     // the tokens it started from (known clusters only)
	s  map[string]context.Context // cluster -> ctx holding its dbrouter session
}

type sessionsKey struct{}

// WithSessions returns a ctx carrying read-your-writes sessions on r's
// clusters, starting from in (the tokens the user's previous request
// returned; tokens of clusters r does not have are dropped). Route.Context
// (and the ctx Each gives its calls) picks the cluster's session: writes
// through it advance that cluster's token, reads through it carry it.
// SessionTokens reads the tokens at the end. HTTP.Middleware does all of
// this for HTTP requests.
func (r *Router) WithSessions(ctx context.Context, in Tokens) context.Context {
	s := &sessions{r: r, in: make(Tokens, len(in)), s: make(map[string]context.Context)}
	for n, tok := range in {
		if _, ok := r.clusters[n]; ok && !tok.IsZero() {
			s.in[n] = tok
		}
	}
	return context.WithValue(ctx, sessionsKey{}, s)
}

func sessionsOf(ctx context.Context) *sessions {
	s, _ := ctx.Value(sessionsKey{}).(*sessions)
	return s
}

// session returns the ctx holding the dbrouter session of cluster name,
// making it on first use.
func (s *sessions) session(name string) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.s[name]
	if !ok {
		c = dbrouter.WithSession(context.Background(), s.in[name])
		s.s[name] = c
	}
	return c
}

// Context returns ctx for statements on rt's cluster: when ctx carries
// sessions (Router.WithSessions, HTTP.Middleware) of the Router that made
// rt, the returned ctx carries that cluster's session, so writes through
// rt.Router advance the cluster's token and reads see them (the primary,
// or a replica that has replayed them); reads on other clusters are not
// held back. Use the returned ctx with rt.Router only: another cluster's
// Router would take this cluster's session for its own (a dbrouter
// session belongs to one cluster). Without sessions it returns ctx.
// Everything else ctx says is kept (dbrouter.Primary, WithToken, its
// deadline and values): the cluster's session is handed to it with
// dbrouter.ShareSession.
//
// When rt has a Floor (its virtual shard was moved), the returned ctx also
// carries it (dbrouter.WithToken), with or without sessions: reads go only
// to replicas that have replayed the rows the move copied, else to the
// primary. Reads of a moved virtual shard made without Route.Context may
// miss rows on a lagging replica of the new cluster.
func (rt Route) Context(ctx context.Context) context.Context {
	if rt.floor != nil {
		ctx = dbrouter.WithToken(ctx, *rt.floor)
	}
	s := sessionsOf(ctx)
	if s == nil || rt.Router == nil || s.r.clusters[rt.Cluster] != rt.Router {
		return ctx
	}
	return dbrouter.ShareSession(ctx, s.session(rt.Cluster))
}

// SessionTokens returns the tokens of ctx's sessions (WithSessions) after
// the writes made through them: the tokens it started from, each cluster
// written to advanced. Reading a written cluster's position costs one
// round trip to its primary (dbrouter.Router.SessionToken); when that
// fails the cluster's token sends its user's reads to its primary
// (dbrouter's choice: never a stale read) and the error names the
// cluster. changed reports whether any cluster was written to. Without
// sessions it returns nil, false, nil.
func (r *Router) SessionTokens(ctx context.Context) (t Tokens, changed bool, err error) {
	s := sessionsOf(ctx)
	if s == nil || s.r != r {
		return nil, false, nil
	}
	s.mu.Lock()
	used := make(map[string]context.Context, len(s.s))
	for n, c := range s.s {
		used[n] = c
	}
	t = s.in.Merge(nil)
	s.mu.Unlock()
	var errs []error
	for n, c := range used {
		tok, terr := r.clusters[n].SessionToken(dbrouter.ShareSession(ctx, c))
		if terr != nil {
			errs = append(errs, fmt.Errorf("shard: cluster %s: %w", n, terr))
		}
		if tok.String() != s.in[n].String() {
			changed = true
			t[n] = t[n].Merge(tok)
		}
	}
	return t, changed, errors.Join(errs...)
}

// bound keeps at most max of t: it first drops, oldest first, tokens every
// replica of their cluster has replayed (they hold nothing back: a read
// without them sees the write on any replica), then keeps the newest
// (Tokens.Newest). A token without an LSN (ConsistencyWindow) is never
// counted as replayed, nor is any token on a cluster with a replica whose
// replay position went backwards (a load balancer, see dbrouter).
func (r *Router) bound(t Tokens, max int) Tokens {
	if len(t) <= max {
		return t
	}
	var done []string
	for n, tok := range t {
		if c, ok := r.clusters[n]; ok && replayedEverywhere(c, tok) {
			done = append(done, n)
		}
	}
	slices.SortFunc(done, func(a, b string) int {
		return cmp.Or(t[a].Time.Compare(t[b].Time), cmp.Compare(t[a].LSN, t[b].LSN), strings.Compare(a, b))
	})
	t = t.Merge(nil)
	for _, n := range done {
		if len(t) <= max {
			break
		}
		delete(t, n)
	}
	return t.Newest(max)
}

// replayedEverywhere reports whether every replica of c has replayed
// tok's LSN, by its monitor's last readings.
func replayedEverywhere(c *dbrouter.Router, tok dbrouter.Token) bool {
	if tok.LSN == 0 {
		return false
	}
	for _, rep := range c.Stats().Replicas {
		if rep.ReplayLSN < tok.LSN || rep.ReplayRegressions > 0 {
			return false
		}
	}
	return true
}
