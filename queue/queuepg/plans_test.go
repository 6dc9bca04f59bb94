package queuepg

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/internal/pgplan"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// planNode is the part of EXPLAIN (FORMAT JSON)'s output the plan checks
// read.
type planNode struct {
	NodeType    string     `json:"Node Type"`
	Relation    string     `json:"Relation Name"`
	IndexName   string     `json:"Index Name"`
	IndexCond   string     `json:"Index Cond"`
	OneTime     string     `json:"One-Time Filter"`
	SubplanName string     `json:"Subplan Name"`
	Parent      string     `json:"Parent Relationship"`
	Loops       *int       `json:"Actual Loops"`
	Plans       []planNode `json:"Plans"`
}

// find returns the node of the plan named name (a CTE: "CTE p0").
func (n planNode) find(name string) (planNode, bool) {
	if n.SubplanName == name {
		return n, true
	}
	for _, c := range n.Plans {
		if f, ok := c.find(name); ok {
			return f, true
		}
	}
	return planNode{}, false
}

// gated reports whether a One-Time Filter sits above the first scan of
// n (not counting its subplans: the filter's own), and returns that scan.
func (n planNode) gated() (scan planNode, gate bool) {
	if strings.Contains(n.NodeType, "Scan") {
		return n, false
	}
	for _, c := range n.Plans {
		if c.Parent == "InitPlan" || c.Parent == "SubPlan" {
			continue
		}
		s, g := c.gated()
		if s.NodeType != "" {
			return s, g || n.OneTime != ""
		}
	}
	return planNode{}, false
}

// scans lists every scan of relation in the plan as "<node type> <index>".
func (n planNode) scans(relation string, out []string) []string {
	if n.Relation == relation && strings.Contains(n.NodeType, "Scan") {
		out = append(out, strings.TrimSpace(n.NodeType+" "+n.IndexName))
	}
	for _, c := range n.Plans {
		out = c.scans(relation, out)
	}
	return out
}

// The fenced statements (complete, extend, release, progress, fail) find
// each job by its primary key, whatever the queue's history: a plan that
// range-scans the leases index (every active job of the queue, and the
// dead index entries of every finished one until vacuum) costs more with
// every job the queue has run, and a sequential scan more still. The
// table holds the history of a busy queue, analyzed, before each EXPLAIN.
func TestFencedStatementsUsePrimaryKey(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{Prefix: "plans"})
	// 20k finished jobs, 500 active ones, 2k waiting: a queue that has run
	// for a while.
	setup := `
INSERT INTO plans_jobs (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, enqueued_at, finished_at, token, lease_until)
SELECT 'q', 'j' || i, 'k', '\x00', 0,
  CASE WHEN i <= 20000 THEN 'done' WHEN i <= 20008 THEN 'active' ELSE 'pending' END, 1, 25,
  now() - interval '1 hour', now() - interval '1 hour',
  CASE WHEN i <= 20000 THEN now() - interval '1 minute' END,
  CASE WHEN i > 20000 AND i <= 20008 THEN 'tok' || i END,
  CASE WHEN i > 20000 AND i <= 20008 THEN now() + interval '1 hour' END
FROM generate_series(1, 22500) i;
ANALYZE plans_jobs`
	if _, err := f.Primary.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	now := serverclock.Param(nil)
	keys := []string{"q", "q", "q"}
	ids := []string{"j20001", "j20002", "j20003"}
	toks := []string{"tok20001", "tok20002", "tok20003"}
	for _, st := range []struct {
		name string
		sql  string
		args []any
	}{
		{"complete", b.sql().complete, []any{now, keys, ids, toks, [][]byte{nil, nil, nil}}},
		{"extend", b.sql().extend, []any{now, "q", "j20001", "tok20001", 1000}},
		{"release", b.sql().release, []any{now, "q", "j20001", "tok20001", nil}},
		{"progress", b.sql().progress, []any{now, "q", "j20001", "tok20001", 50, "half"}},
		{"fail", b.sql().fail, []any{now, "q", "j20001", "tok20001", "boom", time.Now(), false}},
	} {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			t.Run(st.name+"/"+mode, func(t *testing.T) {
				// EXPLAIN without ANALYZE plans the statement and runs nothing.
				// The generic plan is the one a prepared statement settles on.
				plan, out := explainPlan(t, f.Primary, mode, "EXPLAIN (FORMAT JSON) "+st.sql, st.args...)
				scans := plan.scans("plans_jobs", nil)
				for _, s := range scans {
					if s != "Index Scan plans_jobs_pkey" {
						t.Errorf("%s scans plans_jobs with %q, want the primary key only; plan: %s", st.name, s, compact(out))
					}
				}
				if len(scans) == 0 {
					t.Errorf("%s does not scan plans_jobs? plan: %s", st.name, compact(out))
				}
			})
		}
	}
}

// explainPlan runs explain (an EXPLAIN (FORMAT JSON) statement) with
// args under plan_cache_mode = mode in a transaction it rolls back, and
// returns the plan and EXPLAIN's output.
func explainPlan(t *testing.T, pool *pgxpool.Pool, mode, explain string, args ...any) (planNode, []byte) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode); err != nil {
		t.Fatal(err)
	}
	var out []byte
	if err := tx.QueryRow(ctx, explain, args...).Scan(&out); err != nil {
		t.Fatal(err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN output %s: %v", out, err)
	}
	return plans[0].Plan, out
}

func compact(b []byte) string {
	return strings.Join(strings.Fields(fmt.Sprint(string(b))), " ")
}

// Migrate creates the jobs table with autovacuum set to clean it after a
// fixed number of changed rows, whatever its size (see the package doc's
// Vacuum section).
func TestMigrateSetsAutovacuum(t *testing.T) {
	f := testinfra.Postgres(t)
	newBackend(t, f.Primary, Options{Prefix: "vac"})
	var opts []string
	if err := f.Primary.QueryRow(context.Background(), `SELECT reloptions FROM pg_class WHERE relname = 'vac_jobs'`).Scan(&opts); err != nil {
		t.Fatal(err)
	}
	want := []string{"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=10000"}
	if strings.Join(opts, ",") != strings.Join(want, ",") {
		t.Errorf("vac_jobs reloptions = %q, want %q", opts, want)
	}
}

// The fetch starts each priority's range past its floor, as an index
// condition on the due index (a filter would still walk the index entries
// the taken jobs left), and reads a range (below the floor, or of the
// next priority) only when the ranges before it left room: scans behind
// one-time filters, not run (nor their rows locked) when the first range
// filled the fetch. Both plans, custom and generic.
func TestFetchStartsPastTheFloor(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{Prefix: "floorplan"})
	setup := `
INSERT INTO floorplan_jobs (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, enqueued_at)
SELECT 'q', 'j' || lpad(i::text, 6, '0'), 'k', '\x00', 0, CASE WHEN i <= 5000 THEN 'done' ELSE 'pending' END, 0, 25,
  now() - interval '1 hour' + i * interval '1 millisecond', now() - interval '1 hour'
FROM generate_series(1, 10000) i;
ANALYZE floorplan_jobs`
	if _, err := f.Primary.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	var floorAt time.Time
	if err := f.Primary.QueryRow(ctx, `SELECT run_at FROM floorplan_jobs WHERE id = 'j005000'`).Scan(&floorAt); err != nil {
		t.Fatal(err)
	}
	fl := &fetchFloor{at: map[queue.Priority]floorKey{queue.Default: {floorAt, "j005000"}}}
	fl.rounds = 1 // not a round from the bottom
	order := [3]queue.Priority{queue.Default, queue.High, queue.Low}
	args := append([]any{serverclock.Param(nil), "q", 4, 60000, int16(order[0]), int16(order[1]), int16(order[2])}, fl.args(order)...)
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		t.Run(mode, func(t *testing.T) {
			plan, out := explainPlan(t, f.Primary, mode, "EXPLAIN (ANALYZE, FORMAT JSON) "+b.sql().fetch, args...)
			for _, cte := range []string{"p0", "p1", "p2", "b0", "b1", "b2"} {
				n, ok := plan.find("CTE " + cte)
				if !ok {
					t.Fatalf("no CTE %s in the plan: %s", cte, compact(out))
				}
				scan, gate := n.gated()
				if scan.NodeType != "Index Scan" || scan.IndexName != "floorplan_jobs_due" || !strings.Contains(scan.IndexCond, "ROW(run_at, id)") {
					t.Errorf("CTE %s scans with %s %s on %q, want the due index with the floor in its condition; plan: %s",
						cte, scan.NodeType, scan.IndexName, scan.IndexCond, compact(out))
				}
				if !gate {
					t.Errorf("CTE %s is not behind a one-time filter; plan: %s", cte, compact(out))
				}
				if ran := scan.Loops != nil && *scan.Loops > 0; ran != (cte == "p0") {
					t.Errorf("CTE %s scanned: %v, want only p0 (which filled the fetch); plan: %s", cte, ran, compact(out))
				}
			}
		})
	}
}

// completeSQL, prepared as pgx prepares it, settles on its generic plan:
// with the arrays in plain sight the planner counted their elements, each
// custom plan looked cheaper than the generic one, and every round was
// planned again (about 200 µs of server CPU, most of the statement's).
func TestCompleteKeepsItsGenericPlan(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{Prefix: "generic"})
	setup := `
INSERT INTO generic_jobs (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, enqueued_at, token, lease_until)
SELECT 'q', 'j' || i, 'k', '\x00', 0, CASE WHEN i <= 20000 THEN 'done' ELSE 'active' END, 1, 25, now(), now(),
  CASE WHEN i > 20000 THEN 'tok' END, CASE WHEN i > 20000 THEN now() + interval '1 hour' END
FROM generate_series(1, 21000) i;
ANALYZE generic_jobs`
	if _, err := f.Primary.Exec(ctx, setup); err != nil {
		t.Fatal(err)
	}
	conn, err := f.Primary.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Conn().Prepare(ctx, "complete_generic", b.sql().complete); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		n := 1 + i%8
		qs, ids, toks := make([]string, n), make([]string, n), make([]string, n)
		for j := range n {
			qs[j], ids[j], toks[j] = "q", fmt.Sprint("j", 20001+i*8+j), "tok"
		}
		if _, err := conn.Exec(ctx, "complete_generic", serverclock.Param(nil), qs, ids, toks, make([][]byte, n)); err != nil {
			t.Fatal(err)
		}
	}
	var generic, custom int64
	if err := conn.QueryRow(ctx, `SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = 'complete_generic'`).Scan(&generic, &custom); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d generic plans, %d custom", generic, custom)
	if generic < 5 {
		t.Errorf("completeSQL ran 10 times with %d generic and %d custom plans, want the generic plan from the sixth run on", generic, custom)
	}
}

// A prepared statement keeps the generic plan made when it was prepared:
// the completion, planned while the jobs table held 40 rows, was a
// sequential scan and stayed one after the table grew to 50k rows (until
// ANALYZE), reading the whole table once per completion round. The
// backend sends its statements again under a new text once the table's
// size class changes, so the completion it runs after the growth is
// planned for the size the table has.
func TestStatementsAreReplannedWhenTheTableGrows(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	pool := f.OneConnPool(t) // its prepared statements are the code's
	b := newBackend(t, pool, Options{Prefix: "grow", PollOnly: true, ReplanInterval: -1})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	for i := range 40 {
		if _, err := c.Enqueue(ctx, "q", "k", i, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE grow_jobs`); err != nil { // as autovacuum does a new table
		t.Fatal(err)
	}
	if _, err := b.plans.Replan(ctx); err != nil {
		t.Fatal(err)
	}
	// completeOne leases one job and completes it: one completion round.
	completeOne := func() {
		t.Helper()
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "q", Max: 1, Lease: time.Minute, Order: [3]queue.Priority{queue.Default, queue.High, queue.Low}})
		if err != nil || len(ls) != 1 {
			t.Fatalf("Fetch: %d leases, %v", len(ls), err)
		}
		if err := b.Complete(ctx, ls[0], nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 { // the sixth run on settles on the generic plan
		completeOne()
	}
	before := completionPlan(t, pool)
	if _, err := pool.Exec(ctx, `
INSERT INTO grow_jobs (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, enqueued_at, finished_at)
SELECT 'q', 'old' || i, 'k', '\x00', 0, 'done', 1, 25, now(), now(), now() FROM generate_series(1, 50000) i`); err != nil {
		t.Fatal(err)
	}
	class, err := b.plans.Replan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		completeOne()
	}
	after := completionPlan(t, pool)
	t.Logf("size class %s; completion on 40 rows: %v; on 50k rows: %v", class, before, after)
	if len(after) == 0 {
		t.Fatal("the completion does not scan grow_jobs?")
	}
	for _, s := range after {
		if s != "Index Scan grow_jobs_pkey" {
			t.Errorf("after the table grew to 50k rows, the backend's completion scans it with %q (planned on 40 rows: %v); want the primary key", s, before)
		}
	}
}

// completionPlan returns the scans of grow_jobs in the plan the newest
// completion statement prepared on pool's connection runs (EXPLAIN
// EXECUTE: its generic plan once it has one).
func completionPlan(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	ctx := context.Background()
	name := testinfra.NewestPrepared(t, pool, "%WITH c AS (UPDATE grow_jobs%")
	var out []byte
	err := pool.QueryRow(ctx, `EXPLAIN (FORMAT JSON) EXECUTE `+name+`(NULL, '{q}', '{nosuch}', '{tok}', '{NULL}')`).Scan(&out)
	if err != nil {
		t.Fatal(err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN output %s: %v", out, err)
	}
	return plans[0].Plan.scans("grow_jobs", nil)
}

// The replanner reads the tables' size every ReplanInterval while the
// backend is in use and moves it to the statements of the new size class; before Migrate (no
// tables) the size is 0 and reading it is no error.
func TestReplannerFollowsTheSize(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b, err := New(Options{Pool: f.Primary, Prefix: "replanner", ReplanInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if c, err := b.plans.Replan(ctx); err != nil || c != "0.0" {
		t.Fatalf("replan before Migrate = %v, %v; want class 0.0 and no error", c, err)
	}
	if err := b.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Primary.Exec(ctx, `
INSERT INTO replanner_jobs (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, enqueued_at, finished_at)
SELECT 'q', 'old' || i, 'k', '\x00', 0, 'done', 1, 25, now(), now(), now() FROM generate_series(1, 5000) i`); err != nil {
		t.Fatal(err)
	}
	var size int64
	if err := f.Primary.QueryRow(ctx, `SELECT pg_relation_size('replanner_jobs')`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	want := pgplan.Key([]int64{size, 0})
	poll.Until(t, 10*time.Second, "the replanner to see the jobs table grown", func() bool {
		b.sql() // the backend is in use: the replanner skips the ticks of an idle one
		return b.plans.Class() == want
	})
	if tag := pgplan.Tag(want); !strings.HasPrefix(b.sql().complete, tag) || !strings.HasPrefix(b.ev().publish, tag) {
		t.Errorf("the statements do not begin with their class's tag %q: %.60q", tag, b.sql().complete)
	}
}

// Replans racing with enqueues and completions while the table grows:
// every call succeeds, and the class in use is the tables' class at the end.
func TestReplanHammer(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	b := newBackend(t, f.Primary, Options{Prefix: "rphammer", ReplanInterval: -1})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 4 {
		wg.Go(func() {
			for i := range 50 {
				if _, err := b.plans.Replan(ctx); err != nil {
					errs <- err
					return
				}
				if _, err := c.Enqueue(ctx, "q", "k", w*1000+i, queue.EnqueueOptions{}); err != nil {
					errs <- err
					return
				}
			}
		})
		wg.Go(func() {
			for range 20 {
				ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "q", Max: 5, Lease: time.Minute, Order: [3]queue.Priority{queue.Default, queue.High, queue.Low}})
				if err != nil {
					errs <- err
					return
				}
				for _, l := range ls {
					if err := b.Complete(ctx, l, nil); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 5 {
			_, err := f.Primary.Exec(ctx, `
INSERT INTO rphammer_jobs (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, enqueued_at, finished_at)
SELECT 'old', $1 || '-' || i, 'k', '\x00', 0, 'done', 1, 25, now(), now(), now() FROM generate_series(1, 2000 << $2) i`, fmt.Sprint(i), i)
			if err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := b.plans.Replan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var jobs, unique int64
	if err := f.Primary.QueryRow(ctx, `SELECT pg_relation_size('rphammer_jobs'), pg_relation_size('rphammer_unique')`).Scan(&jobs, &unique); err != nil {
		t.Fatal(err)
	}
	if want := pgplan.Key([]int64{jobs, unique}); got != want || b.plans.Class() != want {
		t.Errorf("class after the hammer = %v (in use %v), want %v", got, b.plans.Class(), want)
	}
	if n := b.plans.Classes(); n < 2 {
		t.Errorf("%d size classes seen while the table grew from 0 to %d bytes, want several", n, jobs)
	}
}
