// Package queueredis is a queue.Backend on Redis (standalone, Sentinel or
// Cluster, Redis 7.0 or later):
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
//	backend, err := queueredis.New(queueredis.Options{Client: rdb})
//	if err != nil {
//		return err
//	}
//	jobs, _ := queue.NewClient(queue.ClientOptions{Backend: backend})
//	_, err = jobs.Enqueue(ctx, "emails", "email:welcome", Welcome{UserID: 42}, queue.EnqueueOptions{})
//
//	w, _ := queue.NewWorker(queue.WorkerOptions{Backend: backend, Queues: map[string]queue.Options{"emails": {}}})
//	queue.Handle(w, "email:welcome", sendWelcome)
//	w.Start(ctx) // every worker on the same Redis and Options.Prefix shares the queues
//
// Run Redis with maxmemory-policy noeviction, and with AOF (appendfsync
// always) if no acknowledged job may be lost to a crash: see "When Redis
// is down, slow or restarted" below. The backend has no Close: close the
// client when done.
//
// # How it works
//
// Every operation is one Lua script, so it is atomic and one round trip,
// and every key of one queue shares the hash tag {prefix:queue}, so the
// scripts run on Redis Cluster. A Backend sends the completions and
// fetches of one queue together (see "Batched completions and fetches"
// below): under load a round trip carries many of them. For queue q under Options.Prefix p
// (default "queue") the keys are:
//
//	{p:q}:job:<id>         hash: kind, payload, priority, state, attempt, max_attempts,
//	                       run_at, timeout (attempt and timeout absent while 0),
//	                       unique_key, unique_until, enqueued_at,
//	                       last_error, finished_at, token (the last lease's), lease_until,
//	                       unique_active (1: its unique key is held while it is not finished),
//	                       snoozes, started_at, progress_pct, progress_msg, progress_at,
//	                       output (the JSON stored by Complete), metadata (the
//	                       job's metadata as a JSON object; absent when none)
//	{p:q}:ready:high       list of due job ids, FIFO (one list per priority;
//	{p:q}:ready:default    a fetch pops them in its FetchRequest.Order)
//	{p:q}:ready:low
//	{p:q}:scheduled        ZSET of delayed jobs by run-at
//	{p:q}:retry            ZSET of failed jobs by their next attempt's time
//	{p:q}:active           ZSET of leased jobs by lease deadline
//	{p:q}:done             ZSET of done jobs by finish time (for the retention)
//	{p:q}:dead             ZSET of dead jobs by death order (newest listed first)
//	{p:q}:deadseq          the counter that orders them
//	{p:q}:deadat           ZSET of dead jobs by death time (for the dead retention)
//	{p:q}:cancelled        ZSET of cancelled jobs by cancel time (for the dead retention)
//	{p:q}:unique:<key>     hash: the id holding the unique key, and until when (with a
//	                       TTL), or active=1 (no TTL): while that job is neither done
//	                       nor dead nor cancelled; Complete, a dying Fail and Cancel
//	                       delete it
//	{p:q}:wake             a stream of at most one entry, the wake-up signal
//	{p:q}:paused           set while the queue is paused (Pause; workers read it each second)
//	{p:q}:ids              ZSET of every job's id at score 0, in byte order: List's order
//	                       (enqueue adds, Delete and the retention remove)
//	{p:q}:ids:built        set once ids holds the jobs an older version stored (List)
//	{p}:queues             set of the queue names (Queues), the one key outside a queue's
//	                       slot: a Backend adds a queue at its first enqueue to it (one SADD
//	                       per queue and process, not in the script: in a Cluster the set
//	                       lives in another slot) and at Pause
//
// and for topic t (queue.Client.Publish), in a hash tag of its own:
//
//	{p:topic:t}:subscribers  set of the queues subscribed to t (Subscribe, Unsubscribe)
//
// Times are Unix microseconds. They come from Redis TIME inside each
// script, so the clocks of the fleet do not matter for leases and due
// times; Options.Clock replaces TIME (tests move simulated time with it).
//
// Enqueue stores the hash and puts the id on its ready list (or in
// scheduled), taking the unique key in the same script: a key still held
// returns a *queue.DuplicateError naming the holder. EnqueueMany runs one
// script per queue of the batch (a queue's keys share a slot), which
// stores that queue's jobs in order as Enqueue would and wakes the
// fetches once: a batch on one queue is one round trip, a batch over n
// queues n of them, one after the other. Concurrent Enqueues of one
// queue take turns, two scripts in flight at most: one that finds a turn
// free leaves at once (a lone caller pays no delay), the ones that come
// meanwhile wait and leave together in one EnqueueMany script (up to 256
// jobs or 1 MiB of payloads), each getting its own job's result as if
// sent alone (stored, duplicate, id used); one whose ctx ends while it
// waits returns at once and is not sent. From 16 goroutines this is
// about 0.2 round trips per job, and Redis spends about 13 µs of CPU per
// job instead of 20 (BenchmarkEnqueue in bench/). Fetch first moves due
// scheduled and retry jobs to the back of their ready lists (in run-at
// order), jobs whose lease ran out to the front (they were due first), and
// drops done jobs past the retention, up to 1000 of each per call; then it
// pops up to Max ids from the ready lists in the request's priority order,
// counts an attempt on each and leases it: a fresh token and a deadline in
// active. Extend, Progress, Complete, Fail and Release check the token and the
// deadline before they write (the fence): a worker whose lease ran out
// gets queue.ErrLeaseLost, even before another worker took the job.
// Release gives the attempt back and puts the job at the front of its
// list, or, for a snooze, in the scheduled ZSET until its due time. Done hashes get the retention as their TTL; dead jobs stay until
// Requeue, Delete or their DeadRetention (14 days by default), past which
// a Fetch deletes them (up to 1000 per call).
//
// # Batched completions and fetches
//
// A Backend keeps one round trip at a time in flight per queue for
// Complete and Fetch: a script that completes every completion waiting
// (up to 256) and runs one fetch. A request that finds nothing in flight
// leaves at once (no timer: an idle queue adds no latency); those that
// come while a round trip is in flight leave together in the next one,
// so the batches grow with the load, and completions ride on the
// workers' fetches. Just before a fetch leaves, FetchRequest.Grow raises
// its Max to the worker's handler slots that became free meanwhile, so
// a fetch leases jobs for idle slots only, never ahead of them. Each
// completion of a batch is fenced on its own, as a lone Complete: a
// lease lost or taken over gets queue.ErrLeaseLost while the others of
// the same script are stored. When a round trip fails (Redis down, or
// slower than Timeout), its requests and those waiting behind it get the
// error, each within Timeout (Enqueues waiting for a turn too); a
// Complete whose ctx ends returns at once and is dropped if its round
// trip has not left. On a queue of no-op
// jobs this is about 0.25 round trips per job with 8 workers and 0.07
// with 32 (BenchmarkQueueThroughput in bench/). Extend, Progress, Fail
// and Release are a script each.
//
// List (queue.Client.List) is one script: ZREVRANGEBYLEX on ids below
// the cursor, each id's state and kind read from its hash. An unfiltered
// page reads Limit+1 ids; a page filtered by state or kind examines at
// most queue.ListScanBudget (1000) ids per call, O(log n + 1000) for a
// queue of n jobs, and Client.List calls again while the page is short,
// so a filter that few jobs match costs one such call per 1000 jobs of
// the queue. The ids ZSET costs one ZADD per enqueue (about 100 bytes
// per job); the first List of a queue that an older version filled adds
// its jobs to it, once (O(n) in one script). A done job whose hash
// expired before a Fetch swept it leaves a stale id, which List skips.
//
// Publish on one Redis (a *redis.Client, Sentinel's included) is one
// script: it reads the topic's set and stores the event in every
// subscriber queue as Enqueue would, atomically. On a Redis Cluster (any
// other client) the queues' keys live in other slots than the set and
// than each other, so Publish reads the set, then runs the enqueue
// script once per queue, in queue order, stopping at the first error:
// delivery is per queue there. Publishing the same event again (same
// id: Published.ID is returned with the error) completes it; a queue
// that holds it already stores nothing.
//
// A Fetch with Wait that finds nothing blocks in XREAD BLOCK on the wake
// stream, from the entry id its script saw, so a job enqueued between the
// script and the wait is not missed. Enqueue, Release, Requeue and a Fail
// that retries add an entry, which wakes every fetch waiting on the
// queue at once (in every process); a waiting fetch also looks again at
// the next scheduled, retry or lease deadline, and at least every second.
// A waiting fetch holds one pool connection, and returns as soon as its
// ctx ends; its XREAD then finishes by itself within that second (at once
// if the client is closed). Fetch with Wait 0 answers after one script
// (one round trip of its queue's batch). The batch runs its round trips
// from a goroutine per queue that lives while requests are waiting.
//
// # Why not a consumer group
//
// A Redis Streams consumer group (XREADGROUP with COUNT, XAUTOCLAIM for
// expired leases, XACK) looks like the natural design. It cannot keep
// queue.Backend's contract on its own:
//
//   - A consumer group's lease is the pending entry's idle time, counted
//     on the server's clock from the last delivery. Each fetch asks for
//     its own lease (FetchRequest.Lease), expiry must follow Options.Clock
//     in the conformance suite, and XAUTOCLAIM's min-idle-time can do
//     neither.
//   - XACK does not check who holds the entry, so a worker whose lease
//     expired (and whose job another worker now runs) could still
//     acknowledge it: there is no fencing token.
//   - The delivery counter goes up on every claim and cannot go down, but
//     Release must not count an attempt and Requeue resets them.
//   - A released or reclaimed job should run next, not behind the whole
//     stream; XADD only appends.
//
// A job hash with a token and an active ZSET scored by lease deadline was
// needed anyway; a consumer group on top would only be a second copy of
// the leases to keep consistent. Lists give the same FIFO order per
// priority with LPOP count (batching) and LPUSH to the front. The stream
// survives as the wake-up signal, where its blocking read with an id is
// exactly right.
//
// # When Redis is down, slow or restarted
//
// Every round trip is bounded by Options.Timeout (500ms by default; New
// refuses a client that would ignore it). While Redis is down or slower
// than that, Enqueue, Job, Counts, Dead, Requeue, List and Queues return
// the error (it says when Redis did not answer in time) and the caller
// decides; nothing is buffered in process. A Worker logs its failed fetches and tries
// again with a growing pause (100ms to 5s), so it picks up where it left
// off once Redis answers. A job whose outcome cannot be recorded (its
// Complete fails) stays active until its lease runs out and is then run
// again: handlers must be idempotent (package idempotency). A Fetch whose
// reply is lost to a timeout has leased its jobs to nobody; they are
// redelivered after their lease, that attempt counted. go-redis retries a
// call after some network errors, so a script can run twice: Enqueue of
// the same message and Complete or Fail of the same lease are safe to
// repeat (the repeat succeeds and changes nothing). go-redis also loads
// the scripts again by itself after a restart or failover (NOSCRIPT).
//
// What a restart keeps is what Redis persisted:
//
//   - With AOF and appendfsync always, no acknowledged write is lost, even
//     to a crash (kill -9, power loss): every job comes back in its state,
//     leases included (an expired lease is then redelivered).
//   - With appendfsync everysec (Redis's default for AOF) a crash loses up
//     to about one second of writes: jobs enqueued in that second are
//     lost; completions in that second are undone, so those jobs run
//     again. A clean shutdown (SHUTDOWN, SIGTERM) loses nothing.
//   - With RDB snapshots only, a crash loses everything since the last
//     snapshot.
//   - Without persistence, a restart empties every queue: pending,
//     scheduled, retry and dead jobs are gone. Workers then get
//     queue.ErrLeaseLost for the jobs they held (logged), and new jobs
//     flow again. Use it only for work that may be lost, or use queuepg.
//
// Replication is asynchronous: a failover to a replica can lose the last
// writes the old primary acknowledged, as a crash with everysec does.
//
// Memory: run Redis with maxmemory-policy noeviction. Under an evicting
// policy Redis may drop job hashes or lists to make room, which loses
// jobs silently. With noeviction a full Redis refuses new jobs: Enqueue
// and Requeue return its OOM error and write nothing, while Fetch and the
// outcomes (scripts flagged allow-oom) still run, so workers finish the
// jobs already queued. The scripts declare Redis 7 flags for this: a
// script without them would be refused at its first write command, its
// earlier writes already made, and could strand a job half-moved.
package queueredis
