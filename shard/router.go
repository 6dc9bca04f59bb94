package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/shard/shardstats"
)

// ErrNoShardKey is returned by For for the zero Key and by ForContext for a
// ctx without a key: a call that needs a shard never falls back to a
// default cluster.
var ErrNoShardKey = errors.New("shard: no shard key")

// ErrStaleMap is returned by SetMap for a map whose version is not newer
// than the installed one's; the error is a *StaleMapError.
var ErrStaleMap = errors.New("shard: stale map version")

// StaleMapError is SetMap's refusal of an old map. It Is ErrStaleMap.
type StaleMapError struct {
	// Installed and Offered are the versions of the map in use and of the
	// refused one.
	Installed, Offered int64
}

func (e *StaleMapError) Error() string {
	return fmt.Sprintf("shard: map version %d refused: version %d is installed (want a greater version)", e.Offered, e.Installed)
}

// Is reports whether target is ErrStaleMap.
func (e *StaleMapError) Is(target error) bool { return target == ErrStaleMap }

// Options configure a Router. The Router copies them; later changes to
// the caller's struct or map have no effect.
type Options struct {
	// VirtualShards is the fixed number of virtual shards keys hash to.
	// Choose it once, larger than the most clusters you expect (it is the
	// unit of a move): changing it moves almost every key. Default: 1024
	// (DefaultVirtualShards); at most MaxVirtualShards.
	VirtualShards int
	// Map is the first shard map: Map.Assign has VirtualShards entries,
	// each naming a cluster of Clusters; Map.Version is at least 1.
	// Required.
	Map Map
	// Clusters are the clusters by name, each a primary with its replicas.
	// A cluster may hold no virtual shard (yet). The Router does not close
	// them. Required: at least one, no nil Router, no empty name, at most
	// 65535.
	Clusters map[string]*dbrouter.Router
	// Logger receives map changes (Info) and refused maps (Warn). Default:
	// discard.
	Logger *slog.Logger
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("shard: invalid Options."+format, args...)
}

// Route is where a key goes: the cluster's name and router, the key's
// virtual shard, and the version of the map that decided.
type Route struct {
	// Router is the cluster's primary + replicas: writes with Exec go to
	// its primary, reads to its replicas.
	Router *dbrouter.Router
	// Cluster is the cluster's name in the map.
	Cluster string
	// VShard is the key's virtual shard, in [0, VirtualShards).
	VShard int
	// MapVersion is the Version of the map that routed the key.
	MapVersion int64

	floor *dbrouter.Token // Floor's; nil for none
}

// Floor returns the virtual shard's read floor (Map.Floors): zero unless a
// Mover moved it. Route.Context applies it, so that reads of a moved
// virtual shard see every row the move copied. A fan-out's Target has the
// floors of its cluster's virtual shards merged.
func (rt Route) Floor() dbrouter.Token {
	if rt.floor == nil {
		return dbrouter.Token{}
	}
	return *rt.floor
}

type cluster struct {
	name string
	r    *dbrouter.Router
}

// state is one installed map, resolved for routing: never mutated after
// it is published.
type state struct {
	m        Map
	assign   []uint16 // vshard -> index in clusters
	clusters []cluster
	floors   []*dbrouter.Token // vshard -> Map.Floors[vshard]; nil entry for none
	cfloors  []*dbrouter.Token // cluster index -> its virtual shards' floors merged (fan-outs)
}

// Router routes shard keys to clusters through a versioned map of virtual
// shards. It is safe for concurrent use; For takes no lock and allocates
// nothing.
type Router struct {
	n        int
	names    []string // sorted cluster names
	clusters map[string]*dbrouter.Router
	index    map[string]uint16
	log      *slog.Logger
	cur      atomic.Pointer[state]

	swaps, refused, noKey atomic.Int64
	fo                    fanOut
}

// New validates o and returns a Router with o.Map installed.
func New(o Options) (*Router, error) {
	if o.VirtualShards == 0 {
		o.VirtualShards = DefaultVirtualShards
	}
	if o.VirtualShards < 1 || o.VirtualShards > MaxVirtualShards {
		return nil, invalid("VirtualShards: %d, want 1..%d (0 for %d)", o.VirtualShards, MaxVirtualShards, DefaultVirtualShards)
	}
	if len(o.Clusters) == 0 {
		return nil, invalid("Clusters: none given, want at least one named *dbrouter.Router")
	}
	if len(o.Clusters) > 1<<16-1 {
		return nil, invalid("Clusters: %d given, at most %d", len(o.Clusters), 1<<16-1)
	}
	r := &Router{
		n:        o.VirtualShards,
		clusters: make(map[string]*dbrouter.Router, len(o.Clusters)),
		index:    make(map[string]uint16, len(o.Clusters)),
		log:      o.Logger,
	}
	for name, c := range o.Clusters {
		if name == "" {
			return nil, invalid("Clusters: a cluster has an empty name")
		}
		if c == nil {
			return nil, invalid("Clusters[%q]: nil *dbrouter.Router", name)
		}
		r.clusters[name] = c
		r.names = append(r.names, name)
	}
	slices.Sort(r.names)
	for i, name := range r.names {
		r.index[name] = uint16(i)
	}
	r.fo.init(r.names)
	if r.log == nil {
		r.log = logx.Discard
	}
	st, err := r.resolve(o.Map, "Options.Map")
	if err != nil {
		return nil, fmt.Errorf("shard: invalid %w", err)
	}
	r.cur.Store(st)
	return r, nil
}

// resolve validates m against the Router's virtual shards and clusters;
// field names m in errors.
func (r *Router) resolve(m Map, field string) (*state, error) {
	if m.Version < 1 {
		return nil, fmt.Errorf("%s.Version: %d, want at least 1", field, m.Version)
	}
	if len(m.Assign) != r.n {
		return nil, fmt.Errorf("%s.Assign: %d entries, want one per virtual shard (%d)", field, len(m.Assign), r.n)
	}
	st := &state{m: m.Clone(), assign: make([]uint16, r.n), clusters: make([]cluster, len(r.names)),
		floors: make([]*dbrouter.Token, r.n), cfloors: make([]*dbrouter.Token, len(r.names))}
	for i, name := range r.names {
		st.clusters[i] = cluster{name: name, r: r.clusters[name]}
	}
	for v, name := range m.Assign {
		if name == "" {
			return nil, fmt.Errorf("%s.Assign[%d]: virtual shard %d is not assigned, want a cluster name", field, v, v)
		}
		i, ok := r.index[name]
		if !ok {
			return nil, fmt.Errorf("%s.Assign[%d]: cluster %q is not in Options.Clusters (have %v)", field, v, name, r.names)
		}
		st.assign[v] = i
	}
	if err := checkFloors(m.Floors, r.n, field); err != nil {
		return nil, err
	}
	for v, tok := range st.m.Floors {
		if tok.IsZero() {
			continue
		}
		st.floors[v] = &tok
		i := st.assign[v]
		if st.cfloors[i] == nil {
			st.cfloors[i] = new(dbrouter.Token)
		}
		*st.cfloors[i] = st.cfloors[i].Merge(tok)
	}
	return st, nil
}

// For returns the route of k under the installed map: its cluster and
// virtual shard. The zero Key returns ErrNoShardKey.
func (r *Router) For(k Key) (Route, error) {
	if !k.set {
		r.noKey.Add(1)
		return Route{}, ErrNoShardKey
	}
	st := r.cur.Load()
	v := int(k.h % uint64(r.n))
	c := &st.clusters[st.assign[v]]
	return Route{Router: c.r, Cluster: c.name, VShard: v, MapVersion: st.m.Version, floor: st.floors[v]}, nil
}

// ForContext is For with the key WithKey put in ctx: ErrNoShardKey when
// there is none.
func (r *Router) ForContext(ctx context.Context) (Route, error) {
	k, _ := FromContext(ctx)
	return r.For(k)
}

// SetMap installs m atomically: calls of For that start after SetMap
// returns use it. It refuses, with a *StaleMapError, a map whose Version is
// not greater than the installed one's (so a late or repeated update never
// rolls the map back), and, with an error naming the entry, a map that
// leaves a virtual shard unassigned or names an unknown cluster. SetMap
// does not move data: installing a map that changes a virtual shard's
// cluster before its rows are there sends its reads and writes to a
// cluster without them.
func (r *Router) SetMap(m Map) error {
	st, err := r.resolve(m, "map")
	if err != nil {
		r.refused.Add(1)
		r.log.Warn("shard: map refused", "version", m.Version, "err", err)
		return fmt.Errorf("shard: SetMap: invalid %w", err)
	}
	for {
		old := r.cur.Load()
		if m.Version <= old.m.Version {
			r.refused.Add(1)
			err := &StaleMapError{Installed: old.m.Version, Offered: m.Version}
			r.log.Warn("shard: map refused", "version", m.Version, "installed", old.m.Version, "err", err)
			return err
		}
		if r.cur.CompareAndSwap(old, st) {
			r.swaps.Add(1)
			r.log.Info("shard: map installed", "version", m.Version, "previous", old.m.Version, "moved", moved(old, st))
			return nil
		}
	}
}

// moved counts the virtual shards whose cluster differs between a and b.
func moved(a, b *state) int {
	n := 0
	for v := range a.assign {
		if a.clusters[a.assign[v]].name != b.clusters[b.assign[v]].name {
			n++
		}
	}
	return n
}

// Map returns a copy of the installed map.
func (r *Router) Map() Map { return r.cur.Load().m.Clone() }

// VirtualShards returns the number of virtual shards.
func (r *Router) VirtualShards() int { return r.n }

// Clusters returns the cluster names, sorted.
func (r *Router) Clusters() []string { return slices.Clone(r.names) }

// Cluster returns the cluster named name.
func (r *Router) Cluster(name string) (*dbrouter.Router, bool) {
	c, ok := r.clusters[name]
	return c, ok
}

// Stats is a snapshot of a Router's counters. It lives in package
// shardstats, which collectors import without compiling dbrouter or pgx.
type Stats = shardstats.Stats

// Stats returns a snapshot of the Router's counters.
func (r *Router) Stats() Stats {
	s := Stats{
		VirtualShards: r.n,
		Clusters:      len(r.names),
		MapVersion:    r.cur.Load().m.Version,
		MapSwaps:      r.swaps.Load(),
		MapRefused:    r.refused.Load(),
		NoShardKey:    r.noKey.Load(),
	}
	r.fo.fill(&s)
	return s
}

// VShards returns the number of virtual shards the map in use assigns to
// each cluster, every cluster included (0 for one holding none).
func (r *Router) VShards() map[string]int {
	out := make(map[string]int, len(r.names))
	for _, n := range r.names {
		out[n] = 0
	}
	for _, n := range r.cur.Load().m.Assign {
		out[n]++
	}
	return out
}

type keyCtx struct{}

// WithKey returns a ctx carrying k, for ForContext: set it where the key
// is known (the request's tenant or user) and route deeper down.
func WithKey(ctx context.Context, k Key) context.Context {
	return context.WithValue(ctx, keyCtx{}, k)
}

// FromContext returns the key WithKey put in ctx; false (and the zero
// Key) when there is none.
func FromContext(ctx context.Context) (Key, bool) {
	k, ok := ctx.Value(keyCtx{}).(Key)
	return k, ok && k.set
}
