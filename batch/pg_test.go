package batch_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// countingTracer counts the statements a pool sends that touch authors.
type countingTracer struct{ authorQueries atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, "FROM authors") {
		c.authorQueries.Add(1)
	}
	return ctx
}
func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestNPlusOneAgainstPostgres lists 100 posts and resolves each post's
// author in its own goroutine, as a GraphQL resolver or a template would:
// naively that is 100 author queries; through a Loader it is 1.
func TestNPlusOneAgainstPostgres(t *testing.T) {
	pg := testinfra.Postgres(t)
	ctx := context.Background()
	_, err := pg.Primary.Exec(ctx, `
		CREATE TABLE authors (id bigint PRIMARY KEY, name text NOT NULL);
		CREATE TABLE posts (id bigint PRIMARY KEY, author_id bigint NOT NULL REFERENCES authors, title text);
		INSERT INTO authors SELECT g, 'author ' || g FROM generate_series(1, 30) g;
		INSERT INTO posts SELECT g, 1 + g % 30, 'post ' || g FROM generate_series(1, 100) g;`)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(pg.PrimaryURL)
	if err != nil {
		t.Fatal(err)
	}
	tracer := &countingTracer{}
	cfg.ConnConfig.Tracer = tracer
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	type post struct{ id, authorID int64 }
	rows, _ := pool.Query(ctx, "SELECT id, author_id FROM posts ORDER BY id LIMIT 100")
	posts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (post, error) {
		var p post
		return p, r.Scan(&p.id, &p.authorID)
	})
	if err != nil || len(posts) != 100 {
		t.Fatalf("posts: %d, %v", len(posts), err)
	}

	resolveAll := func(load func(ctx context.Context, id int64) (string, error)) []string {
		names := make([]string, len(posts))
		var wg sync.WaitGroup
		for i, p := range posts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, err := load(ctx, p.authorID)
				if err != nil {
					t.Errorf("author %d: %v", p.authorID, err)
				}
				names[i] = n
			}()
		}
		wg.Wait()
		return names
	}

	// Naive: one query per post.
	naive := resolveAll(func(ctx context.Context, id int64) (string, error) {
		var name string
		err := pool.QueryRow(ctx, "SELECT name FROM authors WHERE id = $1", id).Scan(&name)
		return name, err
	})
	naiveQueries := tracer.authorQueries.Swap(0)

	seen := map[int64]bool{}
	for _, p := range posts {
		seen[p.authorID] = true
	}
	distinct := len(seen)
	// The batch is fetched once every author has joined it; the fetch
	// then waits until all 100 Loads are in (Stats().Loads counts a Load
	// as it joins), so none comes after the batch is done and opens
	// another (under CI load some goroutines started that late: 4
	// queries).
	var authors *batch.Loader[int64, string]
	authors, err = batch.New(func(ctx context.Context, ids []int64) (map[int64]string, error) {
		for deadline := time.Now().Add(time.Minute); authors.Stats().Loads < uint64(len(posts)); time.Sleep(100 * time.Microsecond) {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%d of %d Loads joined within a minute", authors.Stats().Loads, len(posts))
			}
		}
		rows, _ := pool.Query(ctx, "SELECT id, name FROM authors WHERE id = ANY($1)", ids)
		out := map[int64]string{}
		var id int64
		var name string
		_, err := pgx.ForEachRow(rows, []any{&id, &name}, func() error { out[id] = name; return nil })
		return out, err
	}, batch.Options{Wait: time.Minute, MaxBatch: distinct}) // fetched once every author has joined: one batch however slowly the goroutines start
	if err != nil {
		t.Fatal(err)
	}
	batched := resolveAll(authors.Load)
	batchedQueries := tracer.authorQueries.Load()

	t.Logf("100 posts: %d author queries naive, %d through batch.Loader", naiveQueries, batchedQueries)
	if naiveQueries != 100 {
		t.Fatalf("naive resolution ran %d author queries, want 100 (the test setup is off)", naiveQueries)
	}
	if batchedQueries != 1 {
		t.Fatalf("batched resolution ran %d author queries, want 1", batchedQueries)
	}
	for i := range naive {
		if naive[i] != batched[i] || !strings.HasPrefix(batched[i], "author ") {
			t.Fatalf("post %d: naive %q, batched %q", i, naive[i], batched[i])
		}
	}
}
