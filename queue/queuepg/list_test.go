package queuepg

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// List reads a bounded range of the primary key whatever the size of the
// queue (its plan is a backward index scan, no Seq Scan), filtered or
// not, and Queues probes the index once per queue: with 100,000 done
// jobs each touches a bounded number of blocks.
func TestListReadsABoundedRange(t *testing.T) {
	ctx := context.Background()
	pool := testinfra.Postgres(t).OneConnPool(t)
	b := newBackend(t, pool, Options{Prefix: "listscan"})
	if _, err := pool.Exec(ctx, `INSERT INTO listscan_jobs (queue, id, kind, payload, priority, state, max_attempts, run_at, enqueued_at, finished_at)
SELECT 'big', 'd' || lpad(i::text, 6, '0'), 'k', '{}'::bytea, 0, 'done', 10, now(), now(), now() FROM generate_series(1, 100000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO listscan_jobs (queue, id, kind, payload, priority, state, max_attempts, run_at, enqueued_at)
SELECT q, 'p', 'k', '{}'::bytea, 0, 'pending', 10, now(), now() FROM unnest(ARRAY['a', 'c', 'e']) AS q`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE listscan_jobs`); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{b.sql().list, b.sql().listBefore} {
		args := []any{time.Now(), "big", 1000, "", "pending", 51}
		if strings.Contains(sql, "$7") {
			args = append(args, "d050000")
		}
		rows, err := pool.Query(ctx, "EXPLAIN "+sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan strings.Builder
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan.WriteString(line + "\n")
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
		if p := plan.String(); strings.Contains(p, "Seq Scan") || !strings.Contains(p, "Index Scan Backward using listscan_jobs_pkey") {
			t.Fatalf("List's plan does not read a backward range of the primary key:\n%s", p)
		} else {
			t.Logf("plan:\n%s", p)
		}
	}
	blocks := func() int64 { return tableBlocks(t, pool, "listscan_jobs") }
	for _, q := range []queue.ListQuery{
		{Queue: "big", Limit: 50},
		{Queue: "big", Limit: 50, Before: "d050000"},
		{Queue: "big", Limit: 50, State: queue.Pending}, // matches none: one budget's worth
		{Queue: "big", Limit: 50, Kind: "other", Before: "d050000"},
	} {
		before := blocks()
		jobs, next, err := b.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		used := blocks() - before
		t.Logf("List(%+v): %d jobs, next %q, %d blocks", q, len(jobs), next, used)
		if used > 3*queue.ListScanBudget {
			t.Fatalf("List(%+v) touched %d blocks of a queue of 100,000 jobs: it scans them", q, used)
		}
		if q.State == "" && q.Kind == "" && (len(jobs) != 50 || next != jobs[49].ID) {
			t.Fatalf("List(%+v): %d jobs, next %q; want 50 and the last one's id", q, len(jobs), next)
		}
		if (q.State != "" || q.Kind != "") && (len(jobs) != 0 || next == "") {
			t.Fatalf("List(%+v): %d jobs, next %q; want none and where to go on", q, len(jobs), next)
		}
	}
	before := blocks()
	qs, err := b.Queues(ctx)
	if err != nil || strings.Join(qs, ",") != "a,big,c,e" {
		t.Fatalf("Queues = %v %v, want a, big, c, e", qs, err)
	}
	if used := blocks() - before; used > 100 {
		t.Fatalf("Queues touched %d blocks: it scans the jobs", used)
	}
}

// A stopped PostgreSQL fails List and Queues with its error, within the
// caller's ctx.
func TestListPostgresDown(t *testing.T) {
	f := testinfra.PostgresExclusive(t)
	b := newBackend(t, f.Primary, Options{})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	f.StopPrimary(testinfra.StopFast)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.List(ctx, queue.ListRequest{Queue: "q"}); err == nil {
		t.Fatal("List with PostgreSQL down succeeded")
	}
	if _, err := c.Queues(ctx); err == nil {
		t.Fatal("Queues with PostgreSQL down succeeded")
	}
	f.StartPrimary()
	if p, err := c.List(context.Background(), queue.ListRequest{Queue: "q"}); err != nil || len(p.Jobs) != 1 {
		t.Fatalf("List after the restart = %+v %v, want the job", p, err)
	}
}
