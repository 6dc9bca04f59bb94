// Package queuepg is a queue.Backend on PostgreSQL (13 or later), with
// EnqueueTx to add a job in the same transaction as the business write:
//
//	backend, err := queuepg.New(queuepg.Options{Pool: pool}) // a *pgxpool.Pool
//	if err != nil {
//		return err
//	}
//	defer backend.Close()
//	if err := backend.Migrate(ctx); err != nil { // creates the queue_* tables
//		return err
//	}
//	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		// ... the business write in tx, then:
//		_, err := backend.EnqueueTx(ctx, tx, "receipts", "receipt:send", Receipt{PaymentID: id}, queue.EnqueueOptions{})
//		return err
//	})
//
// The job exists if and only if the transaction commits (the
// transactional outbox, without the outbox). EnqueueManyTx does the same
// for a batch of jobs in one round trip, as queue.Client.EnqueueMany does
// outside a transaction: one INSERT ... SELECT FROM unnest(...) that
// takes the jobs' unique keys (the first job of the batch with a key
// wins; the others are reported as duplicates) and stores the jobs that
// took theirs, each reported on its own. queue.NewClient and
// queue.NewWorker take the backend like any other. Done jobs are kept for
// Options.Retention for status queries, dead jobs for
// Options.DeadRetention (14 days by default), and removed by Sweep (or
// Options.SweepInterval). Behind PgBouncer in transaction mode, set
// Options.PollOnly (see below).
//
// PublishTx publishes an event (queue.Client.Publish) inside the
// caller's transaction: one INSERT ... SELECT from the <Prefix>_subscriptions
// table stores a job in every subscribed queue, so every subscriber
// gets the event if and only if the transaction commits, with no relay
// process:
//
//	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
//		// ... insert the note in tx, then:
//		_, err := backend.PublishTx(ctx, tx, "note.created", NoteCreated{ID: id}, queue.PublishOptions{Key: noteKey})
//		return err
//	})
//
// # How it works
//
// One jobs table is fetched with FOR UPDATE SKIP LOCKED in batches, and
// LISTEN/NOTIFY wakes waiting workers at once. A queue's completions and
// fetches from one Backend share one round trip at a time: the
// completions that wait while one is in flight leave together with the
// next fetch in one pipelined batch (one implicit transaction; each
// completion still fenced by its lease's token), the fetch grown to the
// worker's handler slots freed meanwhile (queue.FetchRequest.Grow). An
// idle queue's calls leave at once (no linger timer); a busy worker pays
// about one round trip per batch of jobs. Workers are woken by
// NOTIFY, sent after the enqueue committed from the backend's own
// connection, coalesced per queue: never inside the enqueuing
// transaction, because PostgreSQL serialises the commits of transactions
// that notified (a global lock held through the commit), which would cap
// the caller's whole write path. EnqueueTx learns of its transaction's
// commit with pg_xact_status.
//
// PgBouncer (and other poolers) in transaction mode do not keep a session
// for LISTEN: set Options.PollOnly there (or point the workers' pool at
// PostgreSQL directly, or at a session-mode pool); waiting workers then
// poll every Options.PollInterval.
//
// List (queue.Client.List) reads a backward range of the primary key
// (queue, id) below the cursor, no other index and no scan of the
// queue: an unfiltered page reads Limit+1 rows, a page filtered by state
// or kind examines at most queue.ListScanBudget (1000) rows per call (and
// Client.List calls again while the page is short). Ids compare in the
// table's collation: byte order under the C locale, and for the ids
// Enqueue makes (lower-case hex) in every locale. Queues is a skip scan
// of the same index (one probe per queue) with the paused queues and
// those with a done counter: nothing is added to the enqueue path.
//
// # Vacuum
//
// Every job leaves its waiting version's entry in the fetch index when a
// worker takes it, dead until vacuum removes it, and those entries sort
// before the jobs still waiting. A Backend's fetches therefore start each
// priority's range at a floor, the last job it took there, and read below
// it only when the range above does not fill the fetch and every 16th
// round of the queue (a job that comes due below the floor while the
// queue stays busy, such as one enqueued by a transaction that committed
// long after it began, or given back by another process, waits at most
// that long; one given back by this Backend resets the floor; a fetch
// with queue.FetchRequest.Strict, natsrelay's, always starts from the
// bottom). The
// completions are planned once per connection (a generic plan) rather
// than per batch. A prepared statement keeps its generic plan until its
// tables are analyzed again, and one made while the jobs table was a page
// or two (a new or drained queue) is a sequential scan that then reads
// the grown table on every call: so the statements begin with a comment
// naming the jobs and unique tables' size class (the bit length of their
// size in pages), read every Options.ReplanInterval (2s, one small
// query, skipped while the backend is idle); when a table has halved or doubled the text changes, pgx
// prepares the statements again, and PostgreSQL plans them for the size
// the table has (a class seen before finds its statements still
// prepared). pg_stat_statements ignores the comment. Migrate
// creates the jobs table with autovacuum_vacuum_scale_factor = 0 and
// autovacuum_vacuum_threshold = 10000, so autovacuum cleans it after every
// 10,000 changed rows (checked every autovacuum_naptime, one minute by
// default) however many done jobs Retention keeps; with PostgreSQL's
// default (20% of the table) a table holding a million done jobs would
// wait for 200,000. Migrate sets them only when it creates the table: on
// a table made by an earlier version, or tuned by its owner, run
// ALTER TABLE queue_jobs SET (...) to choose. BenchmarkQueueThroughput in
// bench/ measures both: after 100,000 jobs of history, vacuumed, a job
// costs about what it costs after 1,000; unvacuumed, about 2.5 to 3
// times, because the history's dead entries lie in a priority the run's
// jobs do not use: no job taken there sets a floor, so every fetch that
// looks at that priority walks them until vacuum.
//
// When PostgreSQL is down, Enqueue returns its error and workers keep
// retrying their fetches with a growing pause; leases run on the
// database's clock, so a worker that cannot reach the database cannot
// keep its jobs past their lease, and they are redelivered once it is
// back. Committed jobs are as durable as the database.
package queuepg
