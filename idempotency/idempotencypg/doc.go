// Package idempotencypg is an idempotency.Store on PostgreSQL, and the
// way to exactly-once effects: InTx (HTTP) and GuardTx (jobs) commit the
// business write and the completion of the idempotency record in ONE
// transaction, so a retry either finds both or neither.
//
//	store, err := idempotencypg.New(idempotencypg.Options{Pool: pool, SweepInterval: time.Hour})
//	defer store.Close()
//	err = store.Migrate(ctx) // once, at deploy time: creates the table
//	mw, err := idempotency.NewHTTP(idempotency.HTTPOptions{Store: store, Scope: userID})
//	pay := func(w http.ResponseWriter, r *http.Request) {
//		resp, err := store.InTx(r.Context(), func(ctx context.Context, tx pgx.Tx) (idempotency.Response, error) {
//			_, err := tx.Exec(ctx, "INSERT INTO payments ...") // the effect, in the key's transaction
//			return idempotency.Response{Status: http.StatusCreated}, err
//		})
//		... // write resp
//	}
//	http.Handle("POST /payments", mw.Middleware(http.HandlerFunc(pay)))
//
// For queue jobs, a TxGuard behind idempotency.Worker's middleware runs
// each attempt in GuardTx; the handler writes through the key's
// transaction, so a redelivered job never applies its effect twice:
//
//	g, err := idempotencypg.NewTxGuard(idempotencypg.TxGuardOptions{Store: store})
//	jobs, err := idempotency.NewWorker(idempotency.WorkerOptions{Guard: g}) // WorkerOptions.Middleware: jobs.Middleware
//	queue.Handle(w, "charge", func(ctx context.Context, j *queue.Job[Charge]) error {
//		tx, _ := idempotencypg.TxFromContext(ctx)
//		_, err := tx.Exec(ctx, "INSERT INTO charges ...") // commits with the job's key
//		return err
//	})
//
// # How it works
//
// A crash either loses the effect and the completion together (a retry
// runs again) or keeps both (a retry replays the stored response): an
// effect is never applied twice. This is the single-transaction form of
// Brandur Leach's "Implementing Stripe-like idempotency keys in Postgres".
//
// Records live in one table (Migrate creates it) keyed by the scoped key.
// Begin is one INSERT ... ON CONFLICT ... DO UPDATE ... WHERE statement
// that checks the fingerprint and the lease on the conflict path and
// reports the existing record in the same statement. Every statement reads
// the database's now(), so the fleet's clocks do not matter
// (Options.Clock replaces it in tests). Expired records are removed by
// Sweep (call it periodically, or set Options.SweepInterval); until then
// an expired record is treated as absent.
//
// The statements begin with a comment naming the table's size class (the
// bit length of its size in pages), read every Options.ReplanInterval
// (2s, one small query, skipped while the Store is idle): a prepared statement keeps the generic plan made
// when it was prepared until the table is analyzed, and one planned while
// the table held a few keys is a sequential scan that would then read the
// grown table on every replay and completion. When the table has halved
// or doubled the text changes, pgx prepares the statements again, and
// PostgreSQL plans them for the size the table has.
//
// # When PostgreSQL is down or slow
//
// Every call returns an error once PostgreSQL is down or slower than
// Options.Timeout: the middleware answers 503 and the Guard returns
// ErrUnavailable (fail closed: never run a request twice).
package idempotencypg
