package queuepg

import (
	"context"
	"fmt"
	"log/slog"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/internal/every"
)

// A prepared statement keeps the generic plan PostgreSQL made for it
// (from its sixth run) until a table it reads is analyzed again, however
// much the table grows: a plan made while the jobs table was a page or
// two (a new queue, a drained one) is a sequential scan with a hash
// join, cheaper than the primary key there, and each completion, enqueue
// and publish then reads the whole table until autoanalyze comes (within
// a minute on a default server, never with autovacuum off). pgx caches
// one prepared statement per statement text, so the backend begins every
// statement with a comment naming its tables' size class (the number of
// bits of their size in pages): when a table has doubled or halved, the
// text changes, pgx prepares the statement again and PostgreSQL plans it
// for the size the table has now. A table that goes back to a class it
// had finds its statements planned for that size still cached. The
// comment changes neither the plan nor pg_stat_statements' queryid (it
// ignores comments).

// sizeClass is the size class of the jobs and unique tables: the bit
// length of their size in 8 KiB pages (0: empty or missing).
type sizeClass struct{ jobs, unique int }

func classOf(jobsBytes, uniqueBytes int64) sizeClass {
	pages := func(n int64) int { return bits.Len64(uint64(max(n, 0)) / 8192) }
	return sizeClass{jobs: pages(jobsBytes), unique: pages(uniqueBytes)}
}

// tag is the comment the statements of class c begin with.
func (c sizeClass) tag() string {
	return fmt.Sprintf("/* queuepg size class %d.%d */ ", c.jobs, c.unique)
}

// planSet is the statements of one size class.
type planSet struct {
	class sizeClass
	sql   statements
	ev    eventStatements
}

// plans holds the statements of the class the tables are in now, and
// those of the classes seen before (their text is what pgx caches).
type plans struct {
	now    atomic.Pointer[planSet]
	prefix string

	mu   sync.Mutex
	sets map[sizeClass]*planSet
}

// sizeSQL reads the size in bytes of the jobs and unique tables (0 for a
// table not created yet). $1 and $2 the tables' names.
const sizeSQL = `SELECT coalesce(pg_relation_size(to_regclass($1)), 0), coalesce(pg_relation_size(to_regclass($2)), 0)`

func (p *plans) init(prefix string) {
	p.prefix, p.sets = prefix, map[sizeClass]*planSet{}
	p.now.Store(p.set(sizeClass{}))
}

// set returns the statements of class c, made on first use.
func (p *plans) set(c sizeClass) *planSet {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.sets[c]
	if s == nil {
		s = &planSet{class: c, sql: sqlFor(p.prefix, c.tag()), ev: eventSQLFor(p.prefix, c.tag())}
		p.sets[c] = s
	}
	return s
}

// sql returns the backend's statements for its tables' size now.
func (b *Backend) sql() *statements { return &b.plans.now.Load().sql }

// ev returns the events' statements (events.go) for the tables' size now.
func (b *Backend) ev() *eventStatements { return &b.plans.now.Load().ev }

// replan reads the tables' sizes and, when their class has changed, makes
// the backend use the statements of the new class. It reports the class.
func (b *Backend) replan(ctx context.Context) (sizeClass, error) {
	var jobs, unique int64
	p := &b.plans
	if err := b.pool.QueryRow(ctx, sizeSQL, p.prefix+"_jobs", p.prefix+"_unique").Scan(&jobs, &unique); err != nil {
		return p.now.Load().class, fmt.Errorf("queuepg: reading the tables' size: %w", err)
	}
	c := classOf(jobs, unique)
	if old := p.now.Load().class; old != c {
		p.now.Store(p.set(c))
		b.log.Debug("queuepg: the tables' size class changed; their statements are planned again",
			slog.String("from", old.tag()), slog.String("to", c.tag()), slog.Int64("jobs_bytes", jobs), slog.Int64("unique_bytes", unique))
	}
	return c, nil
}

// replanner runs replan every interval until Close.
func (b *Backend) replanner(interval time.Duration) {
	defer b.bg.Done()
	every.Run(b.stop, interval, func(ctx context.Context) {
		if _, err := b.replan(ctx); err != nil {
			b.log.Debug("queuepg: replan failed", slog.Any("error", err))
		}
	})
}
