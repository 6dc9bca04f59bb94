package dbrouter

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
)

// LSN is a position in PostgreSQL's write-ahead log (routerstats.LSN).
type LSN = routerstats.LSN

// ParseLSN parses the text form of a pg_lsn, two hexadecimal numbers of up to
// 8 digits separated by a slash.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if ok {
		h, err1 := strconv.ParseUint(hi, 16, 32)
		l, err2 := strconv.ParseUint(lo, 16, 32)
		if err1 == nil && err2 == nil {
			return LSN(h<<32 | l), nil
		}
	}
	return 0, fmt.Errorf("%w: LSN %q is not of the form XXXXXXXX/XXXXXXXX", ErrInvalid, s)
}

// unknownLSN is a token LSN no replica can reach: reads carrying it go to the
// primary. It stands for a write whose LSN could not be read back.
const unknownLSN = ^LSN(0)

// Token marks a write, for read-your-writes: a read that carries it (WithToken,
// or a session) is served only by a replica that has replayed LSN, or by the
// primary (with ConsistencyWindow: by the primary until Options.Window after
// Time). The zero Token is no constraint. Tokens travel between requests in
// their String form (see HTTP.Middleware and ParseToken). A client can forge
// a token; one beyond the primary's WAL position is clamped to it (see
// Options.TokenMargin), so the worst a forged one does is send that
// client's reads to the primary until the replicas reach that position.
//
// Timeline is the write server's timeline: after a failover (a standby
// promoted, a new timeline forked from the old one at its switch point),
// LSN alone no longer says whether a server has the write. A token of an
// earlier timeline is satisfied only if its LSN is at or before that
// timeline's switch point in the current primary's history; past it, the
// write was lost in the failover, and the read goes to the primary and is
// counted in Stats.LostTokens (see the package doc, "Failover").
type Token struct {
	// LSN is the primary's WAL insert position after the write. Zero: none.
	LSN LSN
	// Time is when the write was made, by Options.Clock. Zero: none.
	Time time.Time
	// Timeline is the timeline of the server that made the write. Zero:
	// unknown (a token from a version without timelines, or a
	// ConsistencyWindow token): the LSN is compared as it is.
	Timeline uint32
}

// IsZero reports whether t carries no constraint (a Timeline alone is
// none).
func (t Token) IsZero() bool { return t.LSN == 0 && t.Time.IsZero() }

// String encodes t as "LSN@unix-milliseconds@timeline"
// ("16/B374D848@1767225600123@2"), or without "@timeline" when Timeline is
// 0, safe in a cookie or header; the zero Token encodes as "".
func (t Token) String() string {
	if t.IsZero() {
		return ""
	}
	var ms int64
	if !t.Time.IsZero() {
		ms = t.Time.UnixMilli()
	}
	s := t.LSN.String() + "@" + strconv.FormatInt(ms, 10)
	if t.Timeline != 0 {
		s += "@" + strconv.FormatUint(uint64(t.Timeline), 10)
	}
	return s
}

// ParseToken decodes Token.String's form; "" is the zero Token. The form
// without a timeline (written before tokens carried one) parses with
// Timeline 0.
func ParseToken(s string) (Token, error) {
	if s == "" {
		return Token{}, nil
	}
	l, rest, ok := strings.Cut(s, "@")
	if !ok {
		return Token{}, fmt.Errorf("%w: token %q has no @", ErrInvalid, s)
	}
	lsn, err := ParseLSN(l)
	if err != nil {
		return Token{}, fmt.Errorf("%w: token %q: bad LSN", ErrInvalid, s)
	}
	ms, tl, hasTL := strings.Cut(rest, "@")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n < 0 {
		return Token{}, fmt.Errorf("%w: token %q: bad time", ErrInvalid, s)
	}
	t := Token{LSN: lsn}
	if n > 0 {
		t.Time = time.UnixMilli(n)
	}
	if hasTL {
		tli, err := strconv.ParseUint(tl, 10, 32)
		if err != nil || tli == 0 {
			return Token{}, fmt.Errorf("%w: token %q: bad timeline (a decimal number from 1 to %d)", ErrInvalid, s, uint32(1<<32-1))
		}
		t.Timeline = uint32(tli)
	}
	return t, nil
}

// Merge is the later of t and u in each field: a read carrying it sees the
// writes of both. Of two tokens of different known timelines the later
// timeline's LSN is kept: it was written after the fork, at or past the
// earlier timeline's switch point, so it covers every write of the earlier
// one that survived the failover.
func (t Token) Merge(u Token) Token {
	switch {
	case t.Timeline != 0 && u.Timeline != 0 && t.Timeline != u.Timeline:
		if u.Timeline > t.Timeline {
			t.LSN, t.Timeline = u.LSN, u.Timeline
		}
	default:
		if u.LSN > t.LSN {
			t.LSN = u.LSN
		}
		t.Timeline = max(t.Timeline, u.Timeline)
	}
	if u.Time.After(t.Time) {
		t.Time = u.Time
	}
	return t
}

// intent is what a ctx says about routing. One ctx value holds all of it, so
// a read costs one ctx.Value lookup.
type intent struct {
	primary bool
	tok     Token
	sess    *session
}

type intentKey struct{}

func intentOf(ctx context.Context) *intent {
	in, _ := ctx.Value(intentKey{}).(*intent)
	return in
}

func withIntent(ctx context.Context, f func(*intent)) context.Context {
	var in intent
	if old := intentOf(ctx); old != nil {
		in = *old
	}
	f(&in)
	return context.WithValue(ctx, intentKey{}, &in)
}

// Primary returns a ctx whose reads (Query, QueryRow, read-only BeginTx) go to
// the primary: for reads that must see everything committed anywhere, such as
// the read half of a check-then-act.
func Primary(ctx context.Context) context.Context {
	return withIntent(ctx, func(in *intent) { in.primary = true })
}

// WithToken returns a ctx whose reads see the write tok marks (merged with a
// token ctx already carries): they go only to replicas that have replayed
// tok.LSN, by the monitor's last reading, else to the primary (see
// Options.TokenWait and Options.Consistency).
func WithToken(ctx context.Context, tok Token) context.Context {
	if tok.IsZero() {
		return ctx
	}
	return withIntent(ctx, func(in *intent) { in.tok = in.tok.Merge(tok) })
}

// WithSession returns a ctx carrying a read-your-writes session that starts
// at tok (the token of the user's previous request, or zero). Every write
// made through a Router on this ctx, or a ctx derived from it, advances the
// session's token, and every read on it carries the token: the user reads
// their own writes without passing tokens by hand. Router.SessionToken reads
// the token at the end, to hand to the next request; HTTP.Middleware does
// all of this for HTTP. A session belongs to one database cluster: use it
// with one Router. It is safe for concurrent use.
func WithSession(ctx context.Context, tok Token) context.Context {
	return withIntent(ctx, func(in *intent) { in.sess = &session{tok: tok} })
}

// ShareSession returns ctx carrying the read-your-writes session that from
// carries (WithSession, on from or a ctx it derives from): writes and reads
// on either ctx advance and carry the same token. Everything else ctx says
// is kept: Primary, WithToken, its deadline, cancellation and values. It
// returns ctx when from carries no session. A package holding one session
// per cluster for a request (shard) hands each cluster's session to the
// caller's ctx this way.
func ShareSession(ctx, from context.Context) context.Context {
	src := intentOf(from)
	if src == nil || src.sess == nil {
		return ctx
	}
	return withIntent(ctx, func(in *intent) { in.sess = src.sess })
}

// session is the mutable state WithSession puts in a ctx. A write marks it
// dirty; the primary's LSN is read once, when a read or SessionToken needs
// it, however many writes came before.
type session struct {
	mu    sync.Mutex
	tok   Token
	dirty bool   // a write since tok.LSN was last read (ConsistencyLSN)
	gen   uint64 // writes so far
}

func (s *session) wrote(now time.Time, needLSN bool) {
	s.mu.Lock()
	s.gen++
	s.dirty = s.dirty || needLSN
	if now.After(s.tok.Time) {
		s.tok.Time = now
	}
	s.mu.Unlock()
}

// token returns the session's token, reading the primary's LSN first when a
// write made it dirty. When that read fails the token sends reads to the
// primary (unknownLSN) and err says why.
func (s *session) token(ctx context.Context, insertLSN func(context.Context) (LSN, uint32, error)) (Token, error) {
	s.mu.Lock()
	if !s.dirty {
		t := s.tok
		s.mu.Unlock()
		return t, nil
	}
	gen := s.gen
	s.mu.Unlock()
	lsn, tli, err := insertLSN(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		t := s.tok
		t.LSN = unknownLSN
		return t, err
	}
	s.tok = s.tok.Merge(Token{LSN: lsn, Timeline: tli})
	if s.gen == gen {
		// No write finished after the LSN was read: it covers them all.
		s.dirty = false
	}
	return s.tok, nil
}

// changed reports whether a write happened in this session.
func (s *session) changed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen > 0
}
