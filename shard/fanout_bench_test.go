package shard

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/dbrouter"
)

// BenchmarkFanOut is GatherSorted of an ORDER BY created_at LIMIT 50 page
// over 3 clusters (2000 posts each) against the same query on each cluster
// alone, in the same iterations: fan/slowest is the fan-out's median time
// over the median time of the slowest cluster alone (the goal:
// at most 1.10). "page" runs the real page query (CPU-bound on the
// server: on a small host the 3 concurrent queries compete for its
// cores); "sleep5ms" adds pg_sleep(0.005) to it, a query whose time is
// spent waiting, as on a network or a busy server.
func BenchmarkFanOut(b *testing.B) {
	ctx := context.Background()
	names := []string{"a", "b", "c"}
	clusters := map[string]*dbrouter.Router{}
	for _, n := range names {
		c, f := realCluster(b)
		clusters[n] = c
		if _, err := c.Exec(ctx, postsDDL); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Exec(ctx, `INSERT INTO posts SELECT g, g % 100, timestamptz '2026-01-01' + g * interval '1 second'
			FROM generate_series(1, 2000) g`); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Exec(ctx, "CREATE INDEX ON posts (created_at, id)"); err != nil {
			b.Fatal(err)
		}
		f.WaitReplicaCaughtUp()
	}
	db := mustNew(b, Options{VirtualShards: 64, Map: EvenMap(1, 64, names...), Clusters: clusters})
	for _, q := range []struct{ name, sql string }{
		{"page", pageSQL},
		{"sleep5ms", "SELECT id, user_id, created_at FROM posts, pg_sleep(0.005) ORDER BY created_at, id LIMIT $1"},
	} {
		b.Run(q.name, func(b *testing.B) {
			query := func(ctx context.Context, c *dbrouter.Router) ([]post, error) {
				rows, err := c.Query(ctx, q.sql, 50)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				var out []post
				for rows.Next() {
					var p post
					if err := rows.Scan(&p.ID, &p.UserID, &p.CreatedAt); err != nil {
						return nil, err
					}
					out = append(out, p)
				}
				return out, rows.Err()
			}
			var fan []time.Duration
			alone := make([][]time.Duration, len(names))
			for b.Loop() {
				start := time.Now()
				page, err := GatherSorted(ctx, db, EachOptions{}, 50, byCreated, func(ctx context.Context, tg Target) ([]post, error) {
					return query(ctx, tg.Router)
				})
				fan = append(fan, time.Since(start))
				if err != nil || len(page) != 50 {
					b.Fatalf("fan-out: %d rows, %v", len(page), err)
				}
				for i, n := range names {
					start := time.Now()
					if _, err := query(ctx, clusters[n]); err != nil {
						b.Fatal(err)
					}
					alone[i] = append(alone[i], time.Since(start))
				}
			}
			var slowest time.Duration
			for i := range names {
				slowest = max(slowest, median(alone[i]))
			}
			m := median(fan)
			b.ReportMetric(float64(m.Microseconds()), "fan-µs")
			b.ReportMetric(float64(slowest.Microseconds()), "slowest-µs")
			b.ReportMetric(float64(m)/float64(slowest), "fan/slowest")
		})
	}
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkEachOverhead is what a fan-out adds to its calls: Each and
// GatherSorted over 3 clusters whose calls return at once.
func BenchmarkEachOverhead(b *testing.B) {
	r := mustNew(b, Options{VirtualShards: 64, Map: EvenMap(1, 64, "a", "b", "c"), Clusters: fakeClusters("a", "b", "c")})
	ctx := context.Background()
	b.Run("Each", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := r.Each(ctx, EachOptions{}, func(context.Context, Target) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
	pages := map[string][]post{}
	for i := range 150 {
		n := []string{"a", "b", "c"}[i%3]
		pages[n] = append(pages[n], post{ID: int64(i), CreatedAt: time.Unix(int64(i), 0)})
	}
	b.Run("GatherSorted50", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := GatherSorted(ctx, r, EachOptions{Timeout: time.Second}, 50, byCreated, func(_ context.Context, t Target) ([]post, error) {
				return pages[t.Cluster], nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
