package dbrouter

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
)

// ErrInvalid is wrapped by errors about bad options and malformed tokens.
var ErrInvalid = errors.New("dbrouter: invalid")

// ErrClosed is returned by every call on a Router after Close.
var ErrClosed = errors.New("dbrouter: router closed")

// ErrNotReady is wrapped by Router.Ready's errors while a replica has not
// replayed the router's floor (its start, or the last Fence).
var ErrNotReady = errors.New("dbrouter: not ready")

// ErrNoReplica is returned for a read when every replica is ejected and
// Options.NoFallback is set.
var ErrNoReplica = errors.New("dbrouter: no healthy replica")

// Balance is how a read picks among the healthy replicas it may use.
type Balance int

const (
	// LeastInFlight picks the replica with the fewest reads in flight
	// through this router (ties rotate). The default.
	LeastInFlight Balance = iota
	// RoundRobin rotates through the replicas.
	RoundRobin
)

// String names the balance ("least-in-flight", "round-robin").
func (b Balance) String() string {
	switch b {
	case LeastInFlight:
		return "least-in-flight"
	case RoundRobin:
		return "round-robin"
	}
	return fmt.Sprintf("Balance(%d)", int(b))
}

// Consistency is how a token (read-your-writes) constrains a read.
type Consistency int

const (
	// ConsistencyLSN sends a read carrying a token to a replica whose
	// replayed LSN is at least the token's, else (after Options.TokenWait)
	// to the primary. Exact: reads go back to replicas as soon as they have
	// caught up. The default.
	ConsistencyLSN Consistency = iota
	// ConsistencyWindow sends a read carrying a token to the primary until
	// Options.Window has passed since the token's write (Rails-style), then
	// to any healthy replica. Needs no LSN round trip after writes, but is
	// only as right as Window is long compared with the replicas' lag.
	ConsistencyWindow
)

// String names the mode ("lsn", "window").
func (c Consistency) String() string {
	switch c {
	case ConsistencyLSN:
		return "lsn"
	case ConsistencyWindow:
		return "window"
	}
	return fmt.Sprintf("Consistency(%d)", int(c))
}

// Options configures New and Open. Only Primary is required (for Open: the
// connection strings instead).
type Options struct {
	// Primary is the read-write pool. Required by New; Open makes it.
	Primary *pgxpool.Pool
	// Replicas are pools on streaming replicas of Primary. Default: none,
	// every call goes to Primary.
	Replicas []*pgxpool.Pool
	// ReplicaNames name the replicas in logs and Stats, one per replica.
	// Default: each pool's host:port.
	ReplicaNames []string
	// Balance picks among healthy replicas. Default: LeastInFlight.
	Balance Balance
	// Failover makes every configured server a candidate for the primary,
	// as pgx's target_session_attrs=read-write and hasql do: when a
	// replica is promoted (not in recovery, not read-only, on a new
	// timeline), writes go to it once the primary is unreachable, a
	// standby, read-only, or on an earlier timeline; an old primary back
	// without being demoted (a split brain) is never written to. See the
	// package doc, "Failover". After a failover the writes use the
	// promoted replica's pool: size replica pools for it, and a pool
	// whose sessions are read-only (default_transaction_read_only) is
	// never a candidate. Default: false, writes always go to Primary and
	// a promoted replica is only ejected from reads.
	Failover bool

	// Interval is how often the monitor checks the primary's and every
	// replica's WAL position. Default: 1s; at least 10ms.
	Interval time.Duration
	// CheckTimeout bounds one check of one server. Default: Interval.
	CheckTimeout time.Duration
	// MaxLagBytes ejects a replica whose replay is more than this many
	// bytes of WAL behind the primary. Default: 16 MiB.
	MaxLagBytes int64
	// ReadmitLagBytes is the lag an ejected replica must be back under
	// before it counts a good check, in [0, MaxLagBytes]: the gap between
	// the two keeps a replica hovering at the limit from flapping. Default:
	// MaxLagBytes/2.
	ReadmitLagBytes int64
	// EjectAfter is how many bad observations in a row (failed or lagging
	// checks, failed reads) eject a healthy replica. Default: 2.
	EjectAfter int
	// ReadmitAfter is how many good checks in a row bring an ejected
	// replica back. A replica that has never been healthy (down at
	// start-up) joins on its first good check. Default: 3.
	ReadmitAfter int
	// NoFallback makes reads fail with ErrNoReplica while every replica is
	// ejected. Default: false, they go to the primary. Reads that must go
	// to the primary (Primary(ctx), a token no replica has reached) go
	// there either way.
	NoFallback bool

	// Consistency is how a token constrains reads. Default: ConsistencyLSN.
	Consistency Consistency
	// Window is how long after a write reads carrying its token go to the
	// primary, with ConsistencyWindow. Default: 5s.
	Window time.Duration
	// TokenWait is how long a read whose token no replica has reached (by
	// the monitor's last reading) polls the most advanced healthy replica
	// before it goes to the primary. Default: 0, it goes to the primary at
	// once.
	TokenWait time.Duration
	// TokenPoll is the polling period within TokenWait; concurrent waiters
	// share one poll per replica. Default: 5ms.
	TokenPoll time.Duration

	// TokenMargin is how far past the highest primary WAL position the
	// router knows (the monitor's last reading, write tokens) a token's
	// LSN may be before it is checked against the primary's insert
	// position (one round trip, shared by concurrent reads); a token
	// beyond that position, which no write made, is
	// forged: it is clamped to the position and counted in
	// Stats.ForgedTokens, so a client cannot send its own reads to the
	// primary with a made-up LSN. Default: 16 MiB.
	TokenMargin int64

	// SlowQuery is the threshold of the Tracer that Open installs on the
	// pools it makes (pools passed to New carry whatever tracer their
	// config has; see NewTracer). Default: 500ms.
	SlowQuery time.Duration

	// ConfigurePool, with Open, is called with each pool's config before
	// the pool is made: name is "primary" or the replica's name (from
	// ReplicaNames, else host:port). Set pool sizes, hooks or a
	// ConnConfig.Tracer here: Open keeps the tracer and composes it with
	// its own Tracer (pgx multitracer), so both see every query and the
	// counts still reach Stats. An error fails Open. New ignores it (its
	// pools are made by the caller; Stats finds a *Tracer set directly or
	// inside a multitracer). Default: nil.
	ConfigurePool func(name string, cfg *pgxpool.Config) error

	// RouteTracer sees every routing decision (primary or which replica,
	// and why: a write, a token, a token wait, a fallback) with the
	// statement's ctx, which it may return changed for the pool's query:
	// the otel module's dbrouterotel sets the decision on the query's span.
	// Default: none.
	RouteTracer RouteTracer

	// Clock replaces the system clock (see package clock); nil is the real
	// time. It dates Window tokens and health checks.
	Clock clock.Clock
	// Logger receives ejections, readmissions, primary outages, routing
	// bugs and slow queries. Default: discard.
	Logger *slog.Logger
}

const (
	defaultInterval    = time.Second
	defaultMaxLagBytes = 16 << 20
	defaultEjectAfter  = 2
	defaultReadmit     = 3
	defaultWindow      = 5 * time.Second
	defaultTokenPoll   = 5 * time.Millisecond
	defaultSlowQuery   = 500 * time.Millisecond
	defaultTokenMargin = 16 << 20
)

func invalid(f string, args ...any) error {
	return fmt.Errorf("%w: "+f, append([]any{ErrInvalid}, args...)...)
}

// withDefaults fills the defaults and checks every field but the pools.
func (o Options) withDefaults() (Options, error) {
	if o.Interval == 0 {
		o.Interval = defaultInterval
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = o.Interval
	}
	if o.MaxLagBytes == 0 {
		o.MaxLagBytes = defaultMaxLagBytes
	}
	if o.ReadmitLagBytes == 0 {
		o.ReadmitLagBytes = o.MaxLagBytes / 2
	}
	if o.EjectAfter == 0 {
		o.EjectAfter = defaultEjectAfter
	}
	if o.ReadmitAfter == 0 {
		o.ReadmitAfter = defaultReadmit
	}
	if o.Window == 0 {
		o.Window = defaultWindow
	}
	if o.TokenPoll == 0 {
		o.TokenPoll = defaultTokenPoll
	}
	if o.SlowQuery == 0 {
		o.SlowQuery = defaultSlowQuery
	}
	if o.TokenMargin == 0 {
		o.TokenMargin = defaultTokenMargin
	}
	o.Logger = logx.Or(o.Logger)
	switch {
	case o.Balance != LeastInFlight && o.Balance != RoundRobin:
		return o, invalid("Options.Balance must be LeastInFlight or RoundRobin, got %v", o.Balance)
	case o.Consistency != ConsistencyLSN && o.Consistency != ConsistencyWindow:
		return o, invalid("Options.Consistency must be ConsistencyLSN or ConsistencyWindow, got %v", o.Consistency)
	case o.Interval < 10*time.Millisecond:
		return o, invalid("Options.Interval must be >= 10ms, got %v", o.Interval)
	case o.CheckTimeout < 0:
		return o, invalid("Options.CheckTimeout must be > 0, got %v", o.CheckTimeout)
	case o.MaxLagBytes < 0:
		return o, invalid("Options.MaxLagBytes must be > 0, got %d", o.MaxLagBytes)
	case o.ReadmitLagBytes < 0 || o.ReadmitLagBytes > o.MaxLagBytes:
		return o, invalid("Options.ReadmitLagBytes must be in [0, MaxLagBytes=%d], got %d", o.MaxLagBytes, o.ReadmitLagBytes)
	case o.EjectAfter < 1:
		return o, invalid("Options.EjectAfter must be >= 1, got %d", o.EjectAfter)
	case o.ReadmitAfter < 1:
		return o, invalid("Options.ReadmitAfter must be >= 1, got %d", o.ReadmitAfter)
	case o.Window < 0:
		return o, invalid("Options.Window must be > 0, got %v", o.Window)
	case o.TokenWait < 0:
		return o, invalid("Options.TokenWait must be >= 0, got %v", o.TokenWait)
	case o.TokenPoll < 0:
		return o, invalid("Options.TokenPoll must be > 0, got %v", o.TokenPoll)
	case o.TokenMargin < 0:
		return o, invalid("Options.TokenMargin must be >= 0, got %d", o.TokenMargin)
	case o.SlowQuery < 0:
		return o, invalid("Options.SlowQuery must be > 0, got %v", o.SlowQuery)
	case o.ReplicaNames != nil && len(o.ReplicaNames) != len(o.Replicas):
		return o, invalid("Options.ReplicaNames must name every replica: %d names for %d Replicas", len(o.ReplicaNames), len(o.Replicas))
	}
	return o, nil
}

// checkPools checks Primary and Replicas for New.
func (o Options) checkPools() error {
	if o.Primary == nil {
		return invalid("Options.Primary is required")
	}
	for i, p := range o.Replicas {
		switch {
		case p == nil:
			return invalid("Options.Replicas[%d] is nil", i)
		case p == o.Primary:
			return invalid("Options.Replicas[%d] is the Primary pool", i)
		}
		for j := range i {
			if o.Replicas[j] == p {
				return invalid("Options.Replicas[%d] is the same pool as Replicas[%d]", i, j)
			}
		}
	}
	return nil
}
