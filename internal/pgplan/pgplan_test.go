package pgplan

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

func TestKey(t *testing.T) {
	for _, c := range []struct {
		sizes []int64
		want  string
	}{
		{nil, ""}, {[]int64{0}, "0"}, {[]int64{-1}, "0"}, {[]int64{8191}, "0"}, {[]int64{8192}, "1"},
		{[]int64{2 * 8192, 3*8192 - 1}, "2.2"}, {[]int64{4 * 8192, 1 << 40}, "3.28"},
	} {
		if got := Key(c.sizes); got != c.want {
			t.Errorf("Key(%v) = %q, want %q", c.sizes, got, c.want)
		}
	}
	if got := Tag("3.1"); got != "/* size class 3.1 */ " {
		t.Errorf("Tag = %q", got)
	}
}

// The class follows the tables' sizes (a missing table is empty); the
// statements of a class are built once and found again when a table goes
// back to it.
func TestReplanFollowsTheSizes(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	var builds atomic.Int64
	s := New(f.Primary, []string{"pgplan_a", "public.pgplan_b"}, func(tag string) *string {
		builds.Add(1)
		q := tag + "SELECT 1"
		return &q
	})
	if c := s.Class(); c != "0.0" || !strings.HasPrefix(*s.Get(), Tag("0.0")) {
		t.Fatalf("a new Set: class %q, statement %q; want 0.0 and its tag", c, *s.Get())
	}
	if c, err := s.Replan(ctx); err != nil || c != "0.0" {
		t.Fatalf("Replan before the tables exist = %q, %v; want 0.0", c, err)
	}
	if _, err := f.Primary.Exec(ctx, `CREATE TABLE pgplan_a (id int, pad text); CREATE TABLE pgplan_b (id int);
INSERT INTO pgplan_a SELECT i, repeat('x', 100) FROM generate_series(1, 5000) i`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Primary.Exec(context.Background(), `DROP TABLE IF EXISTS pgplan_a, pgplan_b`) })
	var size int64
	if err := f.Primary.QueryRow(ctx, `SELECT pg_relation_size('pgplan_a')`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	want := Key([]int64{size, 0})
	if c, err := s.Replan(ctx); err != nil || c != want || s.Class() != want || *s.Get() != Tag(want)+"SELECT 1" {
		t.Fatalf("Replan after the growth = %q, %v (in use %q: %q); want %q", c, err, s.Class(), *s.Get(), want)
	}
	if _, err := f.Primary.Exec(ctx, `TRUNCATE pgplan_a`); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Replan(ctx); err != nil || c != "0.0" {
		t.Fatalf("Replan after TRUNCATE = %q, %v; want 0.0", c, err)
	}
	if n := builds.Load(); n != 2 || s.Classes() != 2 {
		t.Errorf("%d builds, %d classes for two classes, want 2 and 2 (class 0.0 found again)", n, s.Classes())
	}
}

// countingQuerier counts the size queries.
type countingQuerier struct {
	Querier
	n atomic.Int64
}

func (q *countingQuerier) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	q.n.Add(1)
	return q.Querier.QueryRow(ctx, sql, args...)
}

// Run's ticks read the sizes only after statements were taken since the
// last tick: an idle store sends no query.
func TestTickSkipsIdleStores(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	q := &countingQuerier{Querier: f.Primary}
	s := New(q, []string{"pgplan_idle"}, func(tag string) *string { return &tag })
	log := slog.New(slog.DiscardHandler)
	if s.tick(ctx, log, "test") || q.n.Load() != 0 {
		t.Fatalf("a tick before any Get replanned (%d queries)", q.n.Load())
	}
	s.Get()
	s.Get()
	if !s.tick(ctx, log, "test") || q.n.Load() != 1 {
		t.Fatalf("a tick after Gets: %d queries, want 1", q.n.Load())
	}
	if s.tick(ctx, log, "test") || q.n.Load() != 1 {
		t.Fatalf("a tick with no Get since the last: %d queries, want still 1", q.n.Load())
	}
	s.Get()
	if !s.tick(ctx, log, "test") || q.n.Load() != 2 {
		t.Fatalf("a tick after another Get: %d queries, want 2", q.n.Load())
	}
}
