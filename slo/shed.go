package slo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/priority"
)

// ErrShed is returned, without calling the function, for a call a
// Shedder shed to save an objective's error budget.
var ErrShed = errors.New("slo: shed to save the error budget")

// ShedLevel is what a Shedder sheds now.
type ShedLevel int32

// The levels, from none to the most.
const (
	// ShedNone: every call runs.
	ShedNone ShedLevel = iota
	// ShedSheddable: a page alert of an objective is firing; sheddable
	// calls are shed.
	ShedSheddable
	// ShedDefault: a page alert is firing and the objective's budget is
	// spent; sheddable and default calls are shed, critical ones run.
	ShedDefault
)

// String returns "none", "sheddable" or "default".
func (l ShedLevel) String() string {
	switch l {
	case ShedNone:
		return "none"
	case ShedSheddable:
		return "sheddable"
	case ShedDefault:
		return "default"
	}
	return fmt.Sprintf("ShedLevel(%d)", int32(l))
}

// ShedderOptions configures NewShedder.
type ShedderOptions struct {
	// Objectives are the SLOs whose alerts drive the shedding; at least
	// one.
	Objectives []*SLO
	// Every is how often the objectives are evaluated (SLO.Evaluate), at
	// most: by the first call after it has passed. Default: 1s.
	Every time.Duration
	// Clock replaces the system clock (see package clock); nil is the
	// real time. It times Every.
	Clock clock.Clock
	// Logger receives level changes, at Warn (up) and Info (down).
	// Default: discard.
	Logger *slog.Logger
}

// Shedder sheds load by priority class while an objective burns its
// error budget too fast, so what budget is left is spent on critical
// requests: while a Page-severity alert of any of its objectives fires,
// sheddable calls are shed; when that objective's budget is also spent
// (Budget().RemainingFraction <= 0), default calls too. Critical calls
// always run. A call's class comes from its ctx (package priority). It
// is a policy (Do), and is safe for concurrent use; a call between
// evaluations costs an atomic load.
type Shedder struct {
	o ShedderOptions

	level atomic.Int32
	next  atomic.Int64 // ns: when to evaluate again
	mu    sync.Mutex   // one evaluation at a time

	shed [len(priority.Classes)]atomic.Uint64
}

// NewShedder returns a Shedder, or an error naming the bad option.
func NewShedder(o ShedderOptions) (*Shedder, error) {
	if o.Every == 0 {
		o.Every = time.Second
	}
	o.Logger = logx.Or(o.Logger)
	switch {
	case len(o.Objectives) == 0:
		return nil, fmt.Errorf("%w: ShedderOptions.Objectives needs at least one *SLO", ErrInvalid)
	case o.Every < 0:
		return nil, fmt.Errorf("%w: ShedderOptions.Every must be > 0 (0: 1s), got %v", ErrInvalid, o.Every)
	}
	for i, s := range o.Objectives {
		if s == nil {
			return nil, fmt.Errorf("%w: ShedderOptions.Objectives[%d] is nil", ErrInvalid, i)
		}
	}
	o.Objectives = append([]*SLO(nil), o.Objectives...)
	return &Shedder{o: o}, nil
}

// Level evaluates the objectives if Every has passed, and returns what
// is shed now.
func (s *Shedder) Level() ShedLevel {
	now := clock.Now(s.o.Clock).UnixNano()
	if now >= s.next.Load() && s.mu.TryLock() {
		if now >= s.next.Load() {
			s.evaluate(now)
		}
		s.mu.Unlock()
	}
	return ShedLevel(s.level.Load())
}

// evaluate sets the level from the objectives' alerts and budgets.
func (s *Shedder) evaluate(now int64) {
	level := ShedNone
	for _, o := range s.o.Objectives {
		for _, st := range o.Evaluate() {
			if !st.Firing || st.Rule.Severity != Page {
				continue
			}
			level = max(level, ShedSheddable)
			if o.Budget().RemainingFraction <= 0 {
				level = ShedDefault
			}
		}
	}
	s.next.Store(now + int64(s.o.Every))
	if old := ShedLevel(s.level.Swap(int32(level))); old != level {
		lvl := slog.LevelInfo
		if level > old {
			lvl = slog.LevelWarn
		}
		s.o.Logger.LogAttrs(context.Background(), lvl, "slo: shedding level changed",
			slog.String("from", old.String()), slog.String("to", level.String()))
	}
}

// Do runs fn unless the call's class is shed now (ErrShed).
func (s *Shedder) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	if l := s.Level(); l != ShedNone {
		c := priority.From(ctx)
		if c == priority.Sheddable || c == priority.Default && l == ShedDefault {
			s.shed[c.Index()].Add(1)
			return ErrShed
		}
	}
	return fn(ctx)
}

// ShedderStats is a snapshot of a Shedder.
type ShedderStats struct {
	// Level is what is shed now (as of the last evaluation).
	Level ShedLevel
	// Shed counts calls shed, by class.
	Shed priority.Counts
}

// Stats returns a snapshot.
func (s *Shedder) Stats() ShedderStats {
	return ShedderStats{Level: ShedLevel(s.level.Load()), Shed: priority.Counts{
		Sheddable: s.shed[priority.Sheddable.Index()].Load(),
		Default:   s.shed[priority.Default.Index()].Load(),
		Critical:  s.shed[priority.Critical.Index()].Load(),
	}}
}
