// Package pgplan keeps a store's prepared statements planned for the size
// its tables have now.
//
// A prepared statement keeps the generic plan PostgreSQL made for it
// (from its sixth run) until a table it reads is analyzed again, however
// much the table grows: a plan made while a table was a page or two (a
// new store, a drained queue) is a sequential scan, cheaper than an index
// there, and every call then reads the whole grown table until autoanalyze
// comes (within a minute or two on a default server, never with
// autovacuum off). pgx caches one prepared statement per statement text,
// so a Set begins its statements with a comment naming their tables' size
// class (the bit length of each table's size in 8 KiB pages): when a
// table has doubled or halved, the text changes, pgx prepares the
// statements again and PostgreSQL plans them for the size the table has
// now. A table that goes back to a class it had finds that class's
// statements, planned for that size, still cached. The comment changes
// neither the plan nor pg_stat_statements' queryid (it ignores comments).
//
//	plans := pgplan.New(pool, []string{"jobs"}, func(tag string) *statements { return build(tag) })
//	go plans.Run(stop, 2*time.Second, log)  // or plans.Replan(ctx) when you choose
//	pool.Exec(ctx, plans.Get().insert, ...)
package pgplan

import (
	"context"
	"fmt"
	"log/slog"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/internal/every"
)

// DefaultInterval is how often a store reads its tables' sizes by
// default.
const DefaultInterval = 2 * time.Second

// Querier runs the size query: a *pgxpool.Pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Set is the statements T of a store, built for its tables' size class.
// It is safe for concurrent use.
type Set[T any] struct {
	db     Querier
	tables []string
	build  func(tag string) *T
	now    atomic.Pointer[class[T]]
	used   atomic.Bool // Get was called since Run's last tick

	mu      sync.Mutex
	classes map[string]*class[T]
}

// class is the statements of one size class.
type class[T any] struct {
	key string // "10.3": each table's class, in the order of the tables
	v   *T
}

// sizeSQL reads the tables' sizes in bytes, in the order given, 0 for a
// table that does not exist (yet). $1 the tables' names.
const sizeSQL = `SELECT array(SELECT coalesce(pg_relation_size(to_regclass(t)), 0)
  FROM unnest($1::text[]) WITH ORDINALITY AS u(t, i) ORDER BY i)`

// New returns the Set of the statements build makes for tables (names
// as the statements write them, optionally schema-qualified), starting
// at class 0 (every table empty) until the first Replan. build gets the
// tag to begin every statement with.
func New[T any](db Querier, tables []string, build func(tag string) *T) *Set[T] {
	s := &Set[T]{db: db, tables: tables, build: build, classes: map[string]*class[T]{}}
	zero := make([]int64, len(tables))
	s.now.Store(s.class(Key(zero)))
	return s
}

// Get returns the statements of the class the tables are in now.
func (s *Set[T]) Get() *T {
	if !s.used.Load() { // a read of a line written once a tick at most
		s.used.Store(true)
	}
	return s.now.Load().v
}

// Class returns the class the statements in use were built for: each
// table's size class, dot-separated ("10.3").
func (s *Set[T]) Class() string { return s.now.Load().key }

// Classes is how many classes have been built so far.
func (s *Set[T]) Classes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.classes)
}

// class returns the statements of class key, built on first use.
func (s *Set[T]) class(key string) *class[T] {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.classes[key]
	if c == nil {
		c = &class[T]{key: key, v: s.build(Tag(key))}
		s.classes[key] = c
	}
	return c
}

// Key is the class key of tables of these sizes in bytes.
func Key(sizes []int64) string {
	var b strings.Builder
	for i, n := range sizes {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(bits.Len64(uint64(max(n, 0)) / 8192)))
	}
	return b.String()
}

// Tag is the comment the statements of class key begin with.
func Tag(key string) string { return "/* size class " + key + " */ " }

// Replan reads the tables' sizes and, when their class has changed, makes
// Get return the statements of the new class. It returns the class.
func (s *Set[T]) Replan(ctx context.Context) (string, error) {
	var sizes []int64
	if err := s.db.QueryRow(ctx, sizeSQL, s.tables).Scan(&sizes); err != nil {
		return s.Class(), fmt.Errorf("reading the tables' sizes: %w", err)
	}
	if len(sizes) != len(s.tables) {
		return s.Class(), fmt.Errorf("reading the tables' sizes: %d sizes for %d tables", len(sizes), len(s.tables))
	}
	key := Key(sizes)
	if old := s.Class(); old != key {
		s.now.Store(s.class(key))
	}
	return key, nil
}

// Run calls Replan every interval until stop is closed, logging failures
// at debug level (the store's own calls fail too and say why), but skips
// the ticks after which no statement was taken (Get): an idle store sends
// no query, and its first statements after a pause run at most one
// interval on the class they had. Run it in a goroutine its owner waits
// for.
func (s *Set[T]) Run(stop <-chan struct{}, interval time.Duration, log *slog.Logger, name string) {
	every.Run(stop, interval, func(ctx context.Context) { s.tick(ctx, log, name) })
}

// tick is one of Run's ticks: a Replan if Get was called since the last.
// It reports whether it replanned.
func (s *Set[T]) tick(ctx context.Context, log *slog.Logger, name string) bool {
	if !s.used.Swap(false) {
		return false
	}
	old := s.Class()
	key, err := s.Replan(ctx)
	switch {
	case err != nil:
		log.Debug(name+": replan failed", slog.Any("error", err))
	case key != old:
		log.Debug(name+": the tables' size class changed; their statements are planned again",
			slog.String("from", old), slog.String("to", key), slog.Any("tables", s.tables))
	}
	return true
}
