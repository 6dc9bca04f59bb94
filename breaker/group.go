package breaker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrGroupFull is returned by Group.Get when MaxBreakers is reached and
// no breaker held is in Closed state (evicting an open or half-open one
// would forget an outage, a forced or metrics-only one a manual setting).
var ErrGroupFull = errors.New("breaker: group full")

// GroupOptions configures NewGroup.
type GroupOptions struct {
	// Template is the Options every breaker gets, with Name set to its key.
	Template Options
	// For, when set, returns the Options for a key instead of Template
	// (for per-host thresholds). Default: none.
	For func(name string) Options
	// MaxBreakers bounds the breakers held; past it the least recently used
	// closed breaker is dropped. Default: 1000.
	MaxBreakers int
}

// Group holds one Breaker per name (one per downstream host), created on
// first use, with bounded size. It is safe for concurrent use.
type Group struct {
	o  GroupOptions
	mu sync.RWMutex
	m  map[string]*groupEntry
}

type groupEntry struct {
	b        *Breaker
	lastUsed atomic.Int64
}

// NewGroup returns a Group, or an error naming the bad option.
func NewGroup(o GroupOptions) (*Group, error) {
	if o.MaxBreakers == 0 {
		o.MaxBreakers = 1000
	}
	if o.MaxBreakers < 1 {
		return nil, fmt.Errorf("%w: GroupOptions.MaxBreakers must be >= 1, got %d", ErrInvalid, o.MaxBreakers)
	}
	if _, err := o.Template.withDefaults(); err != nil {
		return nil, fmt.Errorf("GroupOptions.Template: %w", err)
	}
	return &Group{o: o, m: map[string]*groupEntry{}}, nil
}

// Get returns name's breaker, creating it if needed.
func (g *Group) Get(name string) (*Breaker, error) {
	now := time.Now().UnixNano()
	g.mu.RLock()
	e := g.m[name]
	g.mu.RUnlock()
	if e != nil {
		e.lastUsed.Store(now)
		return e.b, nil
	}
	opts := g.o.Template
	if g.o.For != nil {
		opts = g.o.For(name)
	}
	opts.Name = name
	b, err := New(opts)
	if err != nil {
		return nil, fmt.Errorf("breaker %q: %w", name, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if e := g.m[name]; e != nil {
		return e.b, nil
	}
	if len(g.m) >= g.o.MaxBreakers {
		var oldest string
		var at int64
		for k, e := range g.m {
			if e.b.State() == Closed && (oldest == "" || e.lastUsed.Load() < at) {
				oldest, at = k, e.lastUsed.Load()
			}
		}
		if oldest == "" {
			return nil, fmt.Errorf("%w: %d breakers held, none closed", ErrGroupFull, len(g.m))
		}
		delete(g.m, oldest)
	}
	e = &groupEntry{b: b}
	e.lastUsed.Store(now)
	g.m[name] = e
	return b, nil
}

// Do runs fn through name's breaker.
func (g *Group) Do(ctx context.Context, name string, fn func(ctx context.Context) error) error {
	b, err := g.Get(name)
	if err != nil {
		return err
	}
	return b.Do(ctx, fn)
}

// Len is the number of breakers held.
func (g *Group) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.m)
}

// Stats returns every held breaker's snapshot.
func (g *Group) Stats() []Stats {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]Stats, 0, len(g.m))
	for _, e := range g.m {
		out = append(out, e.b.Stats())
	}
	return out
}
