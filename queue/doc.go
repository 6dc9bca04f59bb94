// Package queue runs background jobs at least once without losing any:
// a Client enqueues (with a delay or run-at time, a priority, a unique key,
// max attempts, a per-attempt timeout), a Worker runs typed handlers
// (Handle[T]) with per-queue concurrency and optional rate limits, and a
// Backend stores the jobs: MemoryBackend in process, queuepg on
// PostgreSQL (with enqueue in the caller's transaction), queueredis on
// Redis. queuetest is the conformance suite every backend passes. A
// Scheduler enqueues periodic jobs (cron or intervals), once per tick
// across a fleet. Client.Publish fans an event out to every queue
// subscribed to its topic (see Events).
//
//	jobs, _ := queue.NewClient(queue.ClientOptions{Backend: backend}) // queuepg, queueredis or NewMemoryBackend
//	id, err := jobs.Enqueue(ctx, "emails", "email:welcome", Welcome{UserID: 42},
//		queue.EnqueueOptions{UniqueKey: "welcome:42", MaxAttempts: 5})
//
//	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: backend,
//		Queues: map[string]queue.Options{"emails": {Concurrency: 8}}})
//	queue.Handle(w, "email:welcome", func(ctx context.Context, j *queue.Job[Welcome]) error {
//		return send(ctx, j.Args) // an error retries with backoff, then dead-letters
//	})
//	w.Start(ctx)
//	defer w.Shutdown(ctx) // in-flight jobs finish or go back to the queue
//
// # How it works
//
// A worker leases a job for Options.Lease (the visibility timeout)
// and renews the lease every Lease/3 while the handler runs. A worker
// that dies (even by SIGKILL) stops renewing, and the job is redelivered
// once the lease runs out: seconds, not hours. Every outcome carries the
// lease token, so a worker that lost its lease cannot complete or fail a
// job another worker now holds (its handler's ctx is cancelled instead).
// A failed attempt is retried after the Backoff (retry's jittered
// exponential by default); after MaxAttempts, or at once for
// Permanent(err) or args that do not decode, the job goes to the dead
// letters with its last error, to be listed (Client.Dead) and requeued
// (Client.Requeue). A handler panic is a failed attempt whose error holds
// the panic and its stack.
//
// A handler that cannot do its work yet returns Snooze(d): the job runs
// again d from now without spending an attempt (Job.Attempt stays, the
// job's Snoozes count grows). Snoozes are not capped; see Snooze.
//
// Results and progress: a handler reports how far it is with
// Job.Progress (0 to 100 and a short message; one small write, at most
// every 250ms per attempt, fenced by the lease), and a handler registered
// with HandleResult returns a value stored as JSON with the job's
// completion (bounded by WorkerOptions.MaxOutput). Client.Job returns
// them with the job's state, attempt, last error and times (enqueued,
// started, finished): a status endpoint needs nothing else.
//
// Unique jobs: EnqueueOptions.UniqueKey is held for UniqueFor (1h by
// default) from the enqueue, even once the job finished; with
// UniqueWhileActive it is held instead until the job is done or dead, so
// a periodic or retried job can be enqueued again as soon as the last one
// finished. Retrying an Enqueue with the same EnqueueOptions.ID and
// content is safe: it returns the job already there.
//
// Batches: Client.EnqueueMany adds many jobs in one round trip (one
// statement on queuepg, also inside the caller's transaction with
// queuepg's EnqueueManyTx; one script per queue of the batch on
// queueredis) and returns a result per job: its id, or the holder's id
// and a *DuplicateError when its unique key is held, by an existing job
// or an earlier job of the batch. A duplicate fails only itself; an
// invalid job (a bad name or option, args that do not encode) fails the
// whole call before anything is sent, its index and field named.
//
// A queue's rate limit (Options.Limiter) is asked before an attempt
// starts: a job the limiter refuses goes back to the queue at once, its
// attempt not counted, and the worker leases again after the limiter's
// RetryAfter, so a strict limit over a backlog delays jobs and never
// kills them.
//
// Priorities: one fetch looks at High first 60% of the time, Default 30%
// and Low 10%, so lower priorities slow down under load but never starve.
//
// Shutdown(ctx) stops fetching, lets the jobs in flight finish until ctx
// ends, then releases the rest back to the backend (due at once, the
// attempt not counted) and cancels their handlers; Close does so at once.
// Nothing in flight is lost either way.
//
// # Periodic jobs
//
// A Scheduler enqueues a job at every tick of each Schedule: a cron
// expression (five fields or @daily..., read in SchedulerOptions.Location,
// UTC by default) or a fixed interval (Every). Schedules are registered
// with NewScheduler or at run time (Register, Remove).
//
//	s, _ := queue.NewScheduler(queue.SchedulerOptions{Backend: backend, Schedules: []queue.Schedule{
//		{Name: "refresh-stats", Cron: "*/5 * * * *", Queue: "maintenance", Kind: "stats:refresh",
//			Overlap: queue.OverlapSkip},
//	}})
//	s.Start(ctx)
//	defer s.Shutdown(ctx)
//
// Every instance of a service runs the same Scheduler, and each tick is
// enqueued once however many run: the job of the tick at t has the id
// periodic:<name>:<t in Unix ms>, computed alike everywhere, and a
// Backend stores an id once (an Enqueue of the same id, kind and args
// stores nothing: SameJob). That id stays taken while the backend keeps
// the job: until it finishes, then for the backend's Retention of done
// jobs (24h by default on every backend here) or its DeadRetention. A
// Scheduler enqueues a tick at most SchedulerOptions.MaxCatchUp (1h)
// after its time, so an instance that is late (its clock behind, its
// process paused) or that starts just after a tick finds the tick's job
// and adds none, on every backend. Keep MaxCatchUp below the Retention;
// a job deleted by hand (Client.Delete) frees its tick's id. Before
// enqueueing, a Scheduler looks the tick's job up, which tells its Stats
// whether it enqueued the tick or found it there (two instances that
// race may both count it as theirs; the backend still holds one job).
//
// An instance that starts between two ticks does not enqueue the tick
// before it (River's issue 283) unless that tick's Schedule.Missed is
// MissedRunOnce, and then only if no instance enqueued it: every
// instance was down. MissedSkip (the default) counts it as missed.
// Ticks that pass while a Scheduler's loop is held up (the backend
// down: failed enqueues are retried with a pause growing to 5s) are
// missed but the last, which is enqueued late if within MaxCatchUp.
//
// Schedule.Overlap OverlapSkip skips a tick while the schedule's
// previous job is not finished: its jobs hold the unique key
// periodic:<name> while active (EnqueueOptions.UniqueWhileActive), so
// the enqueue of the next tick meets a *DuplicateError instead of adding
// a job. Stats counts ticks emitted, found already enqueued
// (Duplicates), skipped for overlap and missed; metrics.AddScheduler
// exports them. RunDue runs one pass at the clock's time, for tests
// with a clock.Manual. SchedulerOptions.Middleware wraps each tick's
// enqueue as ClientOptions.Middleware wraps a Client's (pass the same
// slice, and periodic jobs carry the same tenant or trace metadata).
//
// # Control
//
// Client.Cancel stops a job that has not finished; its state becomes
// Cancelled. A pending, scheduled or retry-waiting job never runs. A
// running job loses its lease: its worker learns it at its next renewal
// (every Options.Lease/3) at the latest, cancels the handler's ctx and
// records no outcome, so the job stays cancelled and is not retried. A
// done or dead job cannot be cancelled (ErrFinished). Cancelled jobs are
// counted (Counts.Cancelled), drop a while-active unique key, and are
// kept like dead ones for the backend's dead retention; Client.Requeue
// runs a dead or cancelled job again now, its attempts reset.
// Client.Delete removes a job in any state. A Worker counts a running
// job that was cancelled or deleted in Stats.Cancelled, not as a lost
// lease (Stats.Lost).
//
// Client.List reads a queue's jobs a page at a time, filtered by state
// (as Job reports it) and kind, by id from the highest (newest first for
// the ids Enqueue makes), with the queue's Counts as the page's Totals:
//
//	page, err := jobs.List(ctx, queue.ListRequest{Queue: "emails", State: queue.Retry, Limit: 20})
//	for page.Next != "" && err == nil { // ... show page.Jobs, then:
//		page, err = jobs.List(ctx, queue.ListRequest{Queue: "emails", State: queue.Retry, Limit: 20, Cursor: page.Next})
//	}
//
// The cursor is a position by id, not a snapshot: jobs added or removed
// between pages never make a job appear twice or hide one that stayed.
// Every backend reads a page from an ordered index of ids (queuepg its
// primary key, queueredis a sorted set of ids per queue) and examines at
// most ListScanBudget jobs per call when filtering, so a page never costs
// a scan of the queue. Client.Queues lists the queues a backend holds
// (those with jobs, and the paused ones), which the command-line tool's
// `scalekit queue stats` reads when no queue is named.
//
// Client.Pause stops a queue fleet-wide: every Worker asks the backend
// whether a queue is paused at most once a second (one key or primary-key
// read per queue, not one per fetch) and fetches nothing from a paused
// queue, so the whole fleet stops fetching from it within a second. Jobs
// already running finish; enqueues still land and wait. Client.Resume
// lets the workers fetch again within a second; Worker.Stats shows each
// queue's Paused as the worker last read it.
//
// # Middleware and metadata
//
// EnqueueOptions.Metadata is a small map of strings (MaxMetadata pairs)
// stored with the job and handed to its handler (Job.Metadata), so a
// trace context, a request id or a tenant id travels from the code that
// enqueued to the code that runs the job. Client.Job shows it
// (Message.Metadata).
//
// ClientOptions.Middleware wraps every Client.Enqueue: an EnqueueFunc
// gets the job as it will be stored (*Message) and may add metadata
// taken from ctx (inject a trace context or request id) or refuse the
// enqueue by returning an error without calling next.
// WorkerOptions.Middleware wraps every attempt: an AttemptFunc gets the
// handler's ctx and a read-only Attempt (id, queue, kind, attempt
// number, metadata), and may put values into ctx for the handler and
// its logger (the request id, a span), time the attempt, or convert its
// error. In both slices the first middleware is the outermost: it runs
// first and sees the result last. A middleware's error is the
// operation's: an enqueue refused, an attempt failed (retried, or dead
// for Permanent), and a panic in worker middleware is a failed attempt
// like a handler panic. The Middleware of package idempotency's Worker
// runs a job's handler once to completion however often the job is
// delivered.
// IsSnooze tells middleware a snoozed attempt from a failed one. The
// otel module's Tracer.EnqueueMiddleware and AttemptMiddleware carry a
// trace context this way.
//
// RequestIDClient and RequestIDWorker are such a pair for package
// requestid: the request ID (and W3C trace) of the enqueue's ctx goes
// into the job's metadata and back into the attempt's ctx, so with a
// requestid.NewLogHandler logger the handler's lines, and the Worker's
// lines about the attempt's outcome, carry the request's ID:
//
//	c, _ := queue.NewClient(queue.ClientOptions{Backend: b,
//		Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{queue.RequestIDClient()}})
//	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: b, Logger: logger, Queues: qs,
//		Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{queue.RequestIDWorker()}})
//
// # Events
//
// Client.Publish(ctx, topic, event, opts) delivers one event durably to
// every queue subscribed to topic (Client.Subscribe): each subscriber
// queue gets its own job, so it has its own attempts, retries and dead
// letters, and one subscriber failing never holds back the others.
//
//	jobs.Subscribe(ctx, "note.created", "search") // durable, fleet-wide, idempotent
//	jobs.Subscribe(ctx, "note.created", "notify")
//	queue.Handle(searchWorker, "note.created", func(ctx context.Context, j *queue.Job[NoteCreated]) error { ... })
//	p, err := jobs.Publish(ctx, "note.created", NoteCreated{ID: 7}, queue.PublishOptions{Key: "note-7"})
//
// The job an event becomes is the same in every subscriber queue: Kind
// is the topic (a subscriber registers Handle(w, topic, fn)), ID is the
// event's id (PublishOptions.ID, or a new one), Payload is the event as
// JSON, Metadata is PublishOptions.Metadata plus the ordering key
// (PublishOptions.Key) under MetadataEventKey. Topics follow the rules
// of kinds. Subscriptions are stored in the backend (a table on queuepg,
// a set per topic on queueredis), so they hold for the whole fleet and
// across restarts; Subscribe and Unsubscribe are idempotent, and
// Subscribers lists a topic's queues. A publish to a topic with no
// subscriber stores nothing and succeeds.
//
// Publish stores the copies atomically where the engine can:
// MemoryBackend under its lock; queuepg in one statement (INSERT ...
// SELECT from the subscriptions), also inside the caller's transaction
// with its PublishTx: the event exists exactly when the business change
// it announces commits, a transactional outbox with no relay process;
// queueredis in one script on one Redis. On a Redis Cluster the
// subscriber queues live in different slots, so each gets its own
// script, and an error may leave the event in some queues only. There is
// no unique key: the event's id is its dedupe key, and publishing again
// with the same PublishOptions.ID (Published.ID is returned with the
// error) completes a delivery that failed part way, on every backend,
// without a duplicate (a queue that holds the event stores nothing).
//
// The client middleware runs once per Publish, on the event's message
// (Queue empty, Kind the topic), so a trace context it adds travels to
// every subscriber's job. queuepg's PublishTx, like EnqueueTx, runs
// without it.
//
// # When the backend is down
//
// Fetches that fail are retried with a growing pause (100ms to 5s) and
// logged; Enqueue returns the backend's error to the caller. A job whose
// outcome cannot be recorded is redelivered after its lease, so handlers
// must be idempotent (package idempotency helps).
package queue
