package queuepg

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// planNode is the part of EXPLAIN (FORMAT JSON)'s output the plan checks
// read.
type planNode struct {
	NodeType  string     `json:"Node Type"`
	Relation  string     `json:"Relation Name"`
	IndexName string     `json:"Index Name"`
	Plans     []planNode `json:"Plans"`
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
		{"complete", b.sql.complete, []any{now, keys, ids, toks, [][]byte{nil, nil, nil}}},
		{"extend", b.sql.extend, []any{now, "q", "j20001", "tok20001", 1000}},
		{"release", b.sql.release, []any{now, "q", "j20001", "tok20001", nil}},
		{"progress", b.sql.progress, []any{now, "q", "j20001", "tok20001", 50, "half"}},
		{"fail", b.sql.fail, []any{now, "q", "j20001", "tok20001", "boom", time.Now(), false}},
	} {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			t.Run(st.name+"/"+mode, func(t *testing.T) {
				var out []byte
				// EXPLAIN without ANALYZE plans the statement and runs nothing.
				// The generic plan is the one a prepared statement settles on.
				tx, err := f.Primary.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer tx.Rollback(ctx)
				if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode); err != nil {
					t.Fatal(err)
				}
				if err := tx.QueryRow(ctx, "EXPLAIN (FORMAT JSON) "+st.sql, st.args...).Scan(&out); err != nil {
					t.Fatal(err)
				}
				var plans []struct{ Plan planNode }
				if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
					t.Fatalf("EXPLAIN output %s: %v", out, err)
				}
				scans := plans[0].Plan.scans("plans_jobs", nil)
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
