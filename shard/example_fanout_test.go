package shard_test

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/shard"
)

// Each cluster returns its own ORDER BY created_at LIMIT 3 page; Merge
// gives the first 3 rows of all of them.
func ExampleMerge() {
	type post struct {
		ID        int
		CreatedAt int // seconds
	}
	byCreated := func(a, b post) int { return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID)) }
	pageA := []post{{1, 10}, {4, 40}, {7, 70}}
	pageB := []post{{2, 20}, {5, 50}}
	pageC := []post{{3, 5}, {6, 60}, {9, 90}}
	fmt.Println(shard.Merge(byCreated, 3, pageA, pageB, pageC))
	// Output:
	// [{3 5} {1 10} {2 20}]
}

// The latest posts over every cluster: each runs the page query, at most 4
// clusters at once, each bounded by 2s; the pages are merged. A cluster
// that fails is named in the error, next to the other clusters' rows.
func ExampleGatherSorted() {
	var db *shard.Router // shard.New(...)
	type post struct {
		ID        int64
		CreatedAt int64
	}
	latest := func(a, b post) int { return cmp.Or(cmp.Compare(b.CreatedAt, a.CreatedAt), cmp.Compare(b.ID, a.ID)) }
	ctx := context.Background()
	page, err := shard.GatherSorted(ctx, db, shard.EachOptions{Concurrency: 4, Timeout: 2 * time.Second}, 50, latest,
		func(ctx context.Context, t shard.Target) ([]post, error) {
			rows, err := t.Router.Query(ctx, "SELECT id, extract(epoch FROM created_at)::bigint FROM posts ORDER BY created_at DESC, id DESC LIMIT 50")
			if err != nil {
				return nil, err
			}
			return pgx.CollectRows(rows, pgx.RowToStructByPos[post])
		})
	fmt.Println(len(page), err)
}

// Per-cluster read-your-writes over HTTP: the middleware carries one token
// per cluster the user wrote on (the X-Shard-Tokens header and the
// shard_tokens cookie); handlers route with rt.Context(ctx), so the
// user's reads on a cluster they wrote on see the write, and their reads
// elsewhere still go to replicas.
func ExampleNewHTTP() {
	a, b := new(dbrouter.Router), new(dbrouter.Router) // dbrouter.Open(...) each
	db, err := shard.New(shard.Options{Map: shard.EvenMap(1, 1024, "a", "b"), Clusters: map[string]*dbrouter.Router{"a": a, "b": b}})
	if err != nil {
		panic(err)
	}
	tokens, err := shard.NewHTTP(shard.HTTPOptions{Router: db})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /users/{id}/posts", func(w http.ResponseWriter, req *http.Request) {
		id, _ := strconv.ParseInt(req.PathValue("id"), 10, 64)
		rt, err := db.For(shard.Int64(id))
		if err == nil {
			_, err = rt.Router.Exec(rt.Context(req.Context()), "INSERT INTO posts (user_id, body) VALUES ($1, $2)", id, req.FormValue("body"))
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	_ = http.ListenAndServe(":8080", tokens.Middleware(mux))
}
