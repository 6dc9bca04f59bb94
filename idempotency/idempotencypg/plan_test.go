package idempotencypg

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// A prepared statement keeps the generic plan made when it was prepared:
// Begin's lookup and Complete's update, planned while the table held 40
// keys, were sequential scans and stayed so after it grew to 50k keys
// (until ANALYZE), reading the whole table on every replay and every
// completion. The Store sends its statements again under a new text once
// the table's size class changes.
func TestStatementsAreReplannedWhenTheTableGrows(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	pool := f.OneConnPool(t) // its prepared statements are the code's
	s, err := New(Options{Pool: pool, Table: "grow_keys", ReplanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// round begins and completes n new keys, then begins each again (a
	// replay: Begin's lookup of the stored key).
	next := 0
	round := func(n int) {
		t.Helper()
		for range n {
			key := fmt.Sprint("k", next)
			next++
			o, err := s.Begin(ctx, key, "fp", time.Minute, time.Hour)
			if err != nil || o.Status != idempotency.Started {
				t.Fatalf("Begin %s: %+v, %v", key, o, err)
			}
			if err := s.Complete(ctx, key, o.Token, []byte("r"), time.Hour); err != nil {
				t.Fatal(err)
			}
			if o, err := s.Begin(ctx, key, "fp", time.Minute, time.Hour); err != nil || o.Status != idempotency.Completed {
				t.Fatalf("Begin %s again: %+v, %v", key, o, err)
			}
		}
	}
	round(40)
	if _, err := pool.Exec(ctx, `ANALYZE grow_keys`); err != nil { // as autovacuum does a new table
		t.Fatal(err)
	}
	if _, err := s.plans.Replan(ctx); err != nil {
		t.Fatal(err)
	}
	round(10) // the sixth run on settles on the generic plan
	before := seqScans(t, pool)
	if _, err := pool.Exec(ctx, `INSERT INTO grow_keys (key, fingerprint, state, token, lease_until, expires_at)
SELECT 'old' || i, 'fp', 'done', 't', now(), now() + interval '1 hour' FROM generate_series(1, 50000) i`); err != nil {
		t.Fatal(err)
	}
	class, err := s.plans.Replan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	round(10)
	after := seqScans(t, pool)
	t.Logf("size class %s; statements scanning grow_keys sequentially on 90 keys: %v; on 50k keys: %v", class, before, after)
	if len(after) > 0 {
		t.Errorf("after the table grew to 50k keys, the Store's statements %v scan it sequentially (on 90 keys: %v)", after, before)
	}
}

// seqScans returns the statements (Begin, Complete) of the newest size
// class prepared on pool's connection whose plan (EXPLAIN EXECUTE: the
// generic plan once there is one) scans grow_keys sequentially.
func seqScans(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, st := range []struct{ name, like, args string }{
		{"begin", "%WITH ins AS (%INSERT INTO grow_keys%", "('k1', 'fp', 'tok', 1000, 1000, NULL)"},
		{"complete", "%UPDATE grow_keys SET state = 'done'%", "('k1', 'tok', NULL, '\\x00', 1000)"},
	} {
		name := testinfra.NewestPrepared(t, pool, st.like)
		rows, err := pool.Query(ctx, `EXPLAIN EXECUTE `+name+st.args)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(plan, "\n"), "Seq Scan on grow_keys") {
			out = append(out, st.name)
		}
	}
	return out
}
