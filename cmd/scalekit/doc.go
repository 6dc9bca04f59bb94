// Command scalekit inspects and repairs the job queues of package queue on
// Redis (queueredis) or PostgreSQL (queuepg):
//
//	go run github.com/scalekit-go/scalekit/cmd/scalekit queue <command> [flags] [arguments]
//
// The commands:
//
//	stats   [<queue>...]  count each queue's jobs per state, and the age of the oldest due job;
//	                      with no queue named, every queue the backend knows
//	list    <queue>       a queue's jobs, newest first, a page at a time (-state S, -kind K,
//	                      -limit N (default 50, at most 1000), -cursor C), with its totals per state
//	show    <queue> <id>  one job: state, attempts, progress, output, last error, metadata, times
//	dead    <queue>       a queue's dead jobs, most recent first (-limit N, default 20, at most 1000)
//	requeue <queue> <id>  make a dead or cancelled job pending again with fresh attempts
//	delete  <queue> <id>  remove a job in any state, with the unique key it holds
//	cancel  <queue> <id>  a waiting job never runs; a running job's handler is cancelled
//	pause   <queue>       every worker stops fetching from the queue within a second
//	resume  <queue>       the workers fetch from it again
//
// Flags go after the command, before or after the arguments
// (`scalekit queue dead emails -limit 5 -json`). `scalekit queue stats`
// alone counts every queue the backend knows (queue.Client.Queues: the
// queues that hold a job or are paused).
//
// list prints a page and, when there is more, the command for the next
// page (its -cursor, an opaque string valid for the same queue, -state
// and -kind): the cursor is a position by job id, so jobs added or
// removed between pages are neither listed twice nor skip the others. A
// job whose time came is listed as pending, as show says. A -kind or
// -state filter over a large queue costs several bounded round trips
// (see queue.Client.List).
//
// # Backend
//
// Redis: -redis URL, or $REDIS_URL (redis://[user:password@]host:port[/db],
// rediss:// for TLS). A Redis Cluster with -cluster, or when the URL names
// several addresses: comma-separated hosts (redis://h1:7000,h2:7001) or
// go-redis's addr= parameters (redis://h1:7000?addr=h2:7001).
// PostgreSQL: -database URL, or $DATABASE_URL (any pgx connection string).
// A flag overrides the variables; with both variables set and no flag,
// -backend redis|postgres picks one. -prefix is the engine's prefix
// (queueredis.Options.Prefix, queuepg.Options.Prefix; default "queue"), as
// the service that runs the workers sets it. -timeout (default 10s) bounds
// the whole command, so a server that is down or hung fails it in time.
//
// # Output
//
// A table by default (aligned columns; times in UTC to the millisecond, "-"
// for none), JSON with -json. The JSON field names are stable (fields may
// be added, never renamed):
//
//	stats:   [{"queue", "pending", "scheduled", "active", "retry", "dead", "cancelled", "done",
//	           "oldest_pending_ms", "paused"}]
//	show:    {"id", "queue", "kind", "state", "priority", "attempt", "max_attempts", "snoozes",
//	          "payload", "progress": {"percent", "message", "updated_at"} or null,
//	          "output", "last_error", "unique_key", "metadata": {"key": "value"} or null,
//	          "enqueued_at", "run_at", "started_at", "finished_at"}
//	list:    {"queue", "state", "kind", "jobs": [job as in show, ...], "next": cursor or "",
//	          "totals": {"pending", "scheduled", "active", "retry", "dead", "cancelled", "done"}}
//	dead:    [job as in show, ...]
//	requeue, delete, cancel: {"queue", "id", "action": "requeued" | "deleted" | "cancelled"}
//	pause, resume: {"queue", "action": "paused" | "resumed"}
//
// payload and output are the job's JSON as stored (output null when none);
// times are RFC 3339 in UTC, null when not yet.
//
// # Exit codes
//
// 0 when the command did what was asked; 1 when the operation failed (the
// job does not exist, the server is down or did not answer within
// -timeout), with the reason on stderr; 2 for a usage error (an unknown
// command or flag, a missing or bad argument or cursor, no backend
// configured), with what is allowed.
package main
