// Package batch is a DataLoader-style batcher that removes N+1 queries:
// many goroutines calling Load(ctx, key) within a short window become one
// fetch(ctx, keys).
//
//	authors, err := batch.New(func(ctx context.Context, ids []int64) (map[int64]Author, error) {
//		return db.AuthorsByID(ctx, ids) // one query: WHERE id = ANY($1)
//	}, batch.Options{})
//	a, err := authors.Load(ctx, post.AuthorID) // from 100 goroutines: 1 query
//	if errors.Is(err, batch.ErrNotFound) { ... } // the fetch did not return that id
//
//	http.ListenAndServe(addr, batch.MemoMiddleware(mux)) // each key once per request
//
// # How it works
//
// A batch is fetched Wait after its first key (or, with Idle, as soon as
// callers go quiet), at once when it holds MaxBatch keys, or on Flush; at
// most MaxConcurrent fetches run at once. Each key is fetched once per
// batch however many callers ask for it.
//
// Errors: a key the fetch does not return gets ErrNotFound; an error from
// the fetch goes to every key of its batch; a panicking fetch becomes a
// *PanicError for every waiter (never a hung waiter). A caller whose ctx
// ends returns ctx.Err() at once without disturbing the others; the fetch's
// ctx (which carries the first caller's values) is cancelled only when every
// caller waiting on it has gone.
//
// Loader is not a cache. WithMemo (or MemoMiddleware) gives a request a
// memo so the same key is fetched once per request; transient errors and
// panics are never memoized. Partition keeps callers that must not share a
// fetch (tenants, credentials) in separate batches.
//
// Options.Tracer (a batch.Tracer) sees each fetch with the ctx of every
// caller whose key it fetches, so that a tracing package can make one
// span per fetch linked to each caller's span (the otel module's
// Tracer.Batch does). No Tracer costs one nil check per Load.
package batch
