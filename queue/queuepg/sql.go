package queuepg

import (
	"strings"

	"github.com/scalekit-go/scalekit/internal/serverclock"
)

// The backend's statements, each written whole with its parameters listed
// above it. Three kinds of names are filled in once, by New (sqlFor):
//
//	{jobs}, {unique}, {counts}  the tables <Prefix>_jobs, <Prefix>_unique, <Prefix>_counts
//	{paused}                    the table <Prefix>_paused
//	{job_columns}               the job columns scanJob reads (jobColumns)
//	{now}                       "now": parameter $1 when Options.Clock is set, else the
//	                            database's now() (serverclock.SQL(1); $1 is serverclock.Param)
//
// Every statement that reads the clock takes the time as $1. Nothing else
// is spliced into them: the rest of the values are parameters.

// statements are the statements of one Backend, its names filled in.
type statements struct {
	migrate, migrateCounts                           string
	existing, insertJob, enqueueUnique, uniqueHolder string
	insertMany                                       string
	fetch, extend, complete, fail, progress          string
	release, job, counts, dead, requeue, delete      string
	cancel, cancelState                              string
	pause, resume, paused                            string
	sweepJobs, sweepUnique                           string
	list, listBefore, queues                         string // list.go
}

// sqlFor fills in the tables of prefix, and begins every statement with
// tag (a comment naming the tables' size class, plan.go).
func sqlFor(prefix, tag string) statements {
	rr := strings.NewReplacer("{jobs}", prefix+"_jobs", "{unique}", prefix+"_unique", "{counts}", prefix+"_counts", "{paused}", prefix+"_paused",
		"{job_columns}", jobColumns, "{now}", serverclock.SQL(1))
	r := replacer(func(s string) string { return tag + rr.Replace(s) })
	st := statements{
		migrate: r.Replace(migrateSQL), migrateCounts: r.Replace(migrateCountsSQL),
		existing: r.Replace(existingSQL), insertJob: r.Replace(insertJobSQL), enqueueUnique: r.Replace(enqueueUniqueSQL),
		uniqueHolder: r.Replace(uniqueHolderSQL), insertMany: r.Replace(insertManySQL), fetch: r.Replace(fetchSQL),
		extend: r.Replace(extendSQL), progress: r.Replace(progressSQL), complete: r.Replace(completeSQL), fail: r.Replace(failSQL),
		release: r.Replace(releaseSQL), job: r.Replace(jobSQL), counts: r.Replace(countsSQL), dead: r.Replace(deadSQL),
		requeue: r.Replace(requeueSQL), delete: r.Replace(deleteSQL), sweepJobs: r.Replace(sweepJobsSQL),
		sweepUnique: r.Replace(sweepUniqueSQL), cancel: r.Replace(cancelSQL), cancelState: r.Replace(cancelStateSQL),
		pause: r.Replace(pauseSQL), resume: r.Replace(resumeSQL), paused: r.Replace(pausedSQL),
	}
	st.list, st.listBefore, st.queues = listStatements(r)
	return st
}

// replacer fills in a statement.
type replacer func(string) string

// Replace returns s filled in.
func (r replacer) Replace(s string) string { return r(s) }

// migrateSQL creates the tables and indexes, and adds the columns of later
// versions. No parameters.
const migrateSQL = `
CREATE TABLE IF NOT EXISTS {jobs} (
  queue        text NOT NULL,
  id           text NOT NULL,
  kind         text NOT NULL,
  payload      bytea NOT NULL,
  priority     smallint NOT NULL,
  state        text NOT NULL,
  attempt      int NOT NULL DEFAULT 0,
  max_attempts int NOT NULL,
  run_at       timestamptz NOT NULL,
  timeout_ms   bigint NOT NULL DEFAULT 0,
  unique_key   text,
  unique_until timestamptz,
  enqueued_at  timestamptz NOT NULL,
  last_error   text NOT NULL DEFAULT '',
  finished_at  timestamptz,
  token        text,
  lease_until  timestamptz,
  PRIMARY KEY (queue, id)
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);
CREATE INDEX IF NOT EXISTS {jobs}_due ON {jobs} (queue, priority, run_at, id) WHERE state IN ('pending', 'scheduled', 'retry');
CREATE INDEX IF NOT EXISTS {jobs}_leases ON {jobs} (queue, lease_until) WHERE state = 'active';
CREATE INDEX IF NOT EXISTS {jobs}_finished ON {jobs} (queue, state, finished_at) WHERE state IN ('done', 'dead');
CREATE INDEX IF NOT EXISTS {jobs}_cancelled ON {jobs} (queue, finished_at) WHERE state = 'cancelled';
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS unique_active bool NOT NULL DEFAULT false;
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS snoozes int NOT NULL DEFAULT 0;
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS started_at timestamptz,
  ADD COLUMN IF NOT EXISTS progress_pct smallint NOT NULL DEFAULT 0,
  ADD COLUMN IF NOT EXISTS progress_msg text NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS progress_at timestamptz,
  ADD COLUMN IF NOT EXISTS output bytea;
ALTER TABLE {jobs} ADD COLUMN IF NOT EXISTS metadata jsonb;
CREATE TABLE IF NOT EXISTS {unique} (
  queue      text NOT NULL,
  unique_key text NOT NULL,
  job_id     text NOT NULL,
  until      timestamptz NOT NULL,
  PRIMARY KEY (queue, unique_key)
);
CREATE TABLE IF NOT EXISTS {paused} (
  queue     text PRIMARY KEY,
  paused_at timestamptz NOT NULL DEFAULT now()
)`

// migrateCountsSQL creates the done counters and seeds them from the jobs
// table (once: Migrate runs it when the table does not exist). No
// parameters.
const migrateCountsSQL = `
CREATE TABLE IF NOT EXISTS {counts} (
  queue text PRIMARY KEY,
  done  bigint NOT NULL DEFAULT 0
);
INSERT INTO {counts} (queue, done) SELECT queue, count(*) FROM {jobs} WHERE state = 'done' GROUP BY queue
ON CONFLICT (queue) DO NOTHING`

// existingSQL reads the job that holds an id. $1 queue, $2 id.
const existingSQL = `SELECT kind, payload FROM {jobs} WHERE queue = $1 AND id = $2`

// insertJobSQL adds one job without a unique key unless its id is used,
// and returns the transaction's id (no row when the id is used). Its
// times are absolute, except those left NULL, which are counted from
// {now}: $7 run_at (NULL: {now} + $11 µs) and $10 enqueued_at (NULL:
// {now}); EnqueueTx leaves them NULL to read the transaction's clock
// without a round trip. $1 now, $2 queue, $3 id, $4 kind, $5 payload,
// $6 priority, $7 run_at, $8 max_attempts, $9 timeout_ms,
// $10 enqueued_at, $11 delay (µs), $12 metadata (JSON object, NULL for
// none).
const insertJobSQL = `INSERT INTO {jobs} (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, timeout_ms,
  enqueued_at, metadata)
SELECT $2, $3, $4, $5, $6, CASE WHEN t.run_at > {now} THEN 'scheduled' ELSE 'pending' END, 0, $8, t.run_at, $9, t.enqueued_at,
  $12::jsonb
FROM (SELECT coalesce($7::timestamptz, {now} + $11::int8 * interval '1 microsecond') AS run_at,
  coalesce($10::timestamptz, {now}) AS enqueued_at) t
ON CONFLICT (queue, id) DO NOTHING
RETURNING pg_current_xact_id()::text`

// enqueueUniqueSQL adds one job with a unique key in one statement, as
// insertManySQL does a batch (same rules, same result row: status,
// holder, transaction id). The hold is taken first, unless the id is
// used; the job row is stored only if the hold was taken, so nothing is
// taken back. The times are absolute, except those left NULL, counted
// from {now}: $7 run_at (NULL: {now} + $14 µs), $12 enqueued_at (NULL:
// {now}) and $11 unique_until (NULL: {now} + $15 µs, for a key that is
// not while-active).
//
// A while-active hold is taken over only when its job is seen finished,
// never when its job is not seen at all: ON CONFLICT DO UPDATE judges the
// newest version of the hold, which a transaction may have committed
// after this statement's snapshot was taken, together with a job the
// snapshot does not show; "not seen" then meant "gone", and two jobs held
// one key (TestEnqueueUniqueHammer, in CI). A hold whose job really is
// gone (finishing, cancelling and deleting a job drop its hold in the
// same statement, so only a row deleted by hand) is removed by the
// sweeper (sweepUniqueSQL, whose DELETE sees hold and job in one
// snapshot).
// $1 now, $2 queue, $3 id, $4 kind, $5 payload, $6 priority, $7 run_at,
// $8 max_attempts, $9 timeout_ms, $10 unique_key, $11 unique_until,
// $12 enqueued_at, $13 unique_active, $14 delay (µs), $15 unique for (µs),
// $16 metadata (JSON object, NULL for none).
const enqueueUniqueSQL = `WITH t AS (
  SELECT coalesce($12::timestamptz, {now}) AS enqueued_at,
    coalesce($7::timestamptz, {now} + $14::int8 * interval '1 microsecond') AS run_at,
    CASE WHEN NOT $13::bool THEN coalesce($11::timestamptz, {now} + $15::int8 * interval '1 microsecond') END AS unique_until),
used AS (SELECT 1 FROM {jobs} WHERE queue = $2::text AND id = $3::text),
u AS (INSERT INTO {unique} AS u (queue, unique_key, job_id, until)
  SELECT $2, $10::text, $3, CASE WHEN $13 THEN 'infinity'::timestamptz ELSE t.unique_until END FROM t
  WHERE NOT EXISTS (SELECT FROM used)
  ON CONFLICT (queue, unique_key) DO UPDATE SET job_id = EXCLUDED.job_id, until = EXCLUDED.until
  WHERE u.until <= {now} OR (u.until = 'infinity' AND EXISTS (SELECT 1 FROM {jobs} h
    WHERE h.queue = u.queue AND h.id = u.job_id AND h.state IN ('done', 'dead', 'cancelled')))
  RETURNING job_id),
ins AS (INSERT INTO {jobs} (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, timeout_ms,
    unique_key, unique_until, enqueued_at, unique_active, metadata)
  SELECT $2, $3, $4::text, $5::bytea, $6::int2, CASE WHEN t.run_at > {now} THEN 'scheduled' ELSE 'pending' END,
    0, $8::int4, t.run_at, $9::int8, $10, t.unique_until, t.enqueued_at, $13, $16::jsonb
  FROM t WHERE EXISTS (SELECT FROM u)
  ON CONFLICT (queue, id) DO NOTHING
  RETURNING id)
SELECT CASE WHEN ins.id IS NOT NULL THEN 'ok'
    WHEN j.kind IS NOT NULL THEN CASE WHEN j.kind = $4 AND j.payload = $5 THEN 'again' ELSE 'exists' END
    WHEN NOT EXISTS (SELECT FROM u) THEN 'dup'
    ELSE 'race' END,
  CASE WHEN ins.id IS NOT NULL THEN ''
    ELSE coalesce((SELECT job_id FROM {unique} x WHERE x.queue = $2 AND x.unique_key = $10), '') END,
  CASE WHEN ins.id IS NOT NULL THEN pg_current_xact_id()::text ELSE '' END
FROM (SELECT 1) one LEFT JOIN ins ON true
  LEFT JOIN LATERAL (SELECT j.kind, j.payload FROM {jobs} j WHERE ins.id IS NULL AND j.queue = $2 AND j.id = $3) j ON true`

// insertManySQL adds a batch of jobs in one statement, each as
// insertJobSQL or enqueueUniqueSQL would one after the other: a job whose
// id is used is not stored; of the jobs of one queue and unique key whose
// ids are free, the first takes the key (a hold that no longer holds is
// taken over, as in enqueueUniqueSQL) and the others are duplicates; a job
// with a key is stored only if it took it. The holds are taken before the
// jobs are stored (a statement's parts do not see each other's rows), in
// key order, so concurrent batches lock keys in one order. It returns one
// row per job, in batch order: status ('ok' stored, 'again' the same job
// is there, 'exists' another job has the id, 'dup' the key is held,
// 'race' the id was taken by a transaction that committed during the
// statement: the caller looks again), the key's holder (empty if not
// visible to the statement) and the transaction's id for stored jobs.
// $1 now, then arrays, one element a job: $2 queue, $3 id, $4 kind,
// $5 payload, $6 priority, $7 run_at, $8 max_attempts, $9 timeout_ms,
// $10 unique_key (empty for none), $11 unique_until (NULL for none or
// while-active), $12 enqueued_at, $13 unique_active, $14 metadata (JSON
// object text, NULL for none).
const insertManySQL = `WITH b AS (
  SELECT * FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::int2[], $7::timestamptz[], $8::int4[],
    $9::int8[], $10::text[], $11::timestamptz[], $12::timestamptz[], $13::bool[], $14::text[])
  WITH ORDINALITY AS b(queue, id, kind, payload, priority, run_at, max_attempts, timeout_ms, unique_key, unique_until,
    enqueued_at, unique_active, metadata, ord)),
used AS (SELECT b.ord FROM b, LATERAL (SELECT 1 FROM {jobs} j WHERE j.queue = b.queue AND j.id = b.id LIMIT 1) x
  WHERE b.unique_key <> ''),
cand AS (SELECT DISTINCT ON (b.queue, b.unique_key) b.queue, b.unique_key, b.id, b.unique_until, b.unique_active FROM b
  WHERE b.unique_key <> '' AND b.ord NOT IN (SELECT ord FROM used) ORDER BY b.queue, b.unique_key, b.ord),
u AS (INSERT INTO {unique} AS u (queue, unique_key, job_id, until)
  SELECT queue, unique_key, id, CASE WHEN unique_active THEN 'infinity'::timestamptz ELSE unique_until END
  FROM cand ORDER BY queue, unique_key
  ON CONFLICT (queue, unique_key) DO UPDATE SET job_id = EXCLUDED.job_id, until = EXCLUDED.until
  WHERE u.until <= {now} OR (u.until = 'infinity' AND EXISTS (SELECT 1 FROM {jobs} h
    WHERE h.queue = u.queue AND h.id = u.job_id AND h.state IN ('done', 'dead', 'cancelled')))
  RETURNING queue, unique_key, job_id),
ins AS (INSERT INTO {jobs} (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, timeout_ms,
    unique_key, unique_until, enqueued_at, unique_active, metadata)
  SELECT b.queue, b.id, b.kind, b.payload, b.priority, CASE WHEN b.run_at > {now} THEN 'scheduled' ELSE 'pending' END,
    0, b.max_attempts, b.run_at, b.timeout_ms, nullif(b.unique_key, ''), b.unique_until, b.enqueued_at, b.unique_active,
    b.metadata::jsonb
  FROM b LEFT JOIN u ON u.queue = b.queue AND u.unique_key = b.unique_key
  WHERE b.unique_key = '' OR u.job_id = b.id
  ORDER BY b.ord
  ON CONFLICT (queue, id) DO NOTHING
  RETURNING queue, id)
SELECT CASE WHEN ins.id IS NOT NULL THEN 'ok'
    WHEN j.kind IS NOT NULL THEN CASE WHEN j.kind = b.kind AND j.payload = b.payload THEN 'again' ELSE 'exists' END
    WHEN b.unique_key <> '' AND u.job_id IS DISTINCT FROM b.id THEN 'dup'
    ELSE 'race' END,
  CASE WHEN b.unique_key = '' OR ins.id IS NOT NULL THEN '' ELSE coalesce(u.job_id,
    (SELECT job_id FROM {unique} x WHERE x.queue = b.queue AND x.unique_key = b.unique_key), '') END,
  CASE WHEN ins.id IS NOT NULL THEN pg_current_xact_id()::text ELSE '' END
FROM b LEFT JOIN ins ON ins.queue = b.queue AND ins.id = b.id
  LEFT JOIN u ON u.queue = b.queue AND u.unique_key = b.unique_key
  LEFT JOIN LATERAL (SELECT j.kind, j.payload FROM {jobs} j WHERE ins.id IS NULL AND j.queue = b.queue AND j.id = b.id LIMIT 1) j ON true
ORDER BY b.ord`

// uniqueHolderSQL reads the job holding a unique key. $1 queue,
// $2 unique_key.
const uniqueHolderSQL = `SELECT job_id FROM {unique} WHERE queue = $1 AND unique_key = $2`

// jobColumns are the columns scanJob reads, of the jobs table as j.
const jobColumns = `j.queue, j.id, j.kind, j.payload, j.priority, j.state, j.attempt, j.max_attempts, j.run_at, j.timeout_ms,
coalesce(j.unique_key, ''), j.unique_until, j.enqueued_at, j.last_error, j.finished_at, j.token, j.lease_until, j.unique_active,
j.snoozes, j.started_at, j.progress_pct, j.progress_msg, j.progress_at, j.output, j.metadata`

// fetchSQL leases up to $3 jobs: one index range per priority (and one
// for expired leases), each locked with SKIP LOCKED, then the first $3 by
// the fetch order, each given a fresh token and an attempt.
//
// Each priority's range starts past its floor ((run_at, id) > floor: the
// last job this backend took there, see floor.go), so that the fetch does
// not walk the index entries the jobs taken before it left behind (dead
// until vacuum, one per job taken: the walk grew with every job since the
// last vacuum). The range below the floor (jobs that came due there since:
// released, retried, enqueued by a transaction that committed late, left
// by another fetch that rolled back) is read too when the range above it
// falls short of $3, and every fetchFloorRounds-th round starts from the
// bottom (the floors at -infinity). Each range is read only when the
// ranges before it in the fetch order left room (a one-time filter: not
// scanned otherwise), so the fetch neither reads nor locks jobs it would
// not take.
// It returns the job columns and the rank r of the range each job came
// from (0 expired, 1, 2, 3 the priorities $5, $6, $7).
// $1 now, $2 queue, $3 max, $4 lease (ms), $5, $6, $7 the priorities in
// the order to look at them, $8 and $9, $10 and $11, $12 and $13 their
// floors (run_at, id).
const fetchSQL = `WITH
  expired AS (SELECT queue, id, run_at FROM {jobs} WHERE queue = $2 AND state = 'active' AND lease_until <= {now}
              ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED),
  p0 AS (SELECT queue, id, run_at FROM {jobs} WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry')
  AND priority = $5 AND run_at <= {now} AND (run_at, id) > ($8::timestamptz, $9::text)
  AND (SELECT count(*) FROM expired) < $3
  ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED),
  b0 AS (SELECT queue, id, run_at FROM {jobs} WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry')
  AND priority = $5 AND run_at <= {now} AND (run_at, id) <= ($8::timestamptz, $9::text)
  AND (SELECT count(*) FROM expired) + (SELECT count(*) FROM p0) < $3
  ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED),
  p1 AS (SELECT queue, id, run_at FROM {jobs} WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry')
  AND priority = $6 AND run_at <= {now} AND (run_at, id) > ($10::timestamptz, $11::text)
  AND (SELECT count(*) FROM expired) + (SELECT count(*) FROM p0) + (SELECT count(*) FROM b0) < $3
  ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED),
  b1 AS (SELECT queue, id, run_at FROM {jobs} WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry')
  AND priority = $6 AND run_at <= {now} AND (run_at, id) <= ($10::timestamptz, $11::text)
  AND (SELECT count(*) FROM expired) + (SELECT count(*) FROM p0) + (SELECT count(*) FROM b0) + (SELECT count(*) FROM p1) < $3
  ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED),
  p2 AS (SELECT queue, id, run_at FROM {jobs} WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry')
  AND priority = $7 AND run_at <= {now} AND (run_at, id) > ($12::timestamptz, $13::text)
  AND (SELECT count(*) FROM expired) + (SELECT count(*) FROM p0) + (SELECT count(*) FROM b0) + (SELECT count(*) FROM p1)
    + (SELECT count(*) FROM b1) < $3
  ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED),
  b2 AS (SELECT queue, id, run_at FROM {jobs} WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry')
  AND priority = $7 AND run_at <= {now} AND (run_at, id) <= ($12::timestamptz, $13::text)
  AND (SELECT count(*) FROM expired) + (SELECT count(*) FROM p0) + (SELECT count(*) FROM b0) + (SELECT count(*) FROM p1)
    + (SELECT count(*) FROM b1) + (SELECT count(*) FROM p2) < $3
  ORDER BY run_at, id LIMIT $3 FOR UPDATE SKIP LOCKED),
  picked AS (SELECT queue, id, r FROM (
      SELECT queue, id, 0 AS r, run_at FROM expired
      UNION ALL SELECT queue, id, 1, run_at FROM p0 UNION ALL SELECT queue, id, 1, run_at FROM b0
      UNION ALL SELECT queue, id, 2, run_at FROM p1 UNION ALL SELECT queue, id, 2, run_at FROM b1
      UNION ALL SELECT queue, id, 3, run_at FROM p2 UNION ALL SELECT queue, id, 3, run_at FROM b2) x
    ORDER BY r, run_at, id LIMIT $3)
UPDATE {jobs} j SET state = 'active', attempt = j.attempt + 1, started_at = {now},
  token = gen_random_uuid()::text, lease_until = {now} + $4 * interval '1 millisecond'
FROM picked WHERE j.queue = picked.queue AND j.id = picked.id
RETURNING {job_columns}, picked.r`

// The fenced statements (extend, release, progress, fail, complete)
// change a job only while the lease is held: active under this token, its
// deadline not passed. They say "active" as (state || '') = 'active' so
// that the planner cannot use the leases index, whose predicate is
// state = 'active': it prefers that small index to the primary key, and
// then walks every active job of the queue and the dead entries of every
// job finished since the last vacuum, once per job, a cost that grows with
// the queue's history (TestFencedStatementsUsePrimaryKey checks the
// plans). The primary key finds the one row.

// extendSQL renews a lease. $1 now, $2 queue, $3 id, $4 token,
// $5 lease (ms).
const extendSQL = `UPDATE {jobs} SET lease_until = {now} + $5 * interval '1 millisecond'
WHERE queue = $2 AND id = $3 AND token = $4 AND (state || '') = 'active' AND lease_until > {now}`

// releaseSQL gives a leased job back, its attempt not counted: due now
// (its run_at kept, so it goes first) when $5 is NULL, else snoozed until
// $5 (scheduled, or pending when $5 has come), its snoozes counted.
// $1 now, $2 queue, $3 id, $4 token, $5 snooze until (NULL for none).
const releaseSQL = `UPDATE {jobs} SET attempt = attempt - 1, token = NULL, lease_until = NULL,
  state = CASE WHEN $5::timestamptz > {now} THEN 'scheduled' ELSE 'pending' END,
  run_at = coalesce($5::timestamptz, run_at),
  snoozes = snoozes + CASE WHEN $5::timestamptz IS NULL THEN 0 ELSE 1 END
WHERE queue = $2 AND id = $3 AND token = $4 AND (state || '') = 'active' AND lease_until > {now}`

// progressSQL records a held job's progress. $1 now, $2 queue, $3 id,
// $4 token, $5 percent, $6 message.
const progressSQL = `UPDATE {jobs} SET progress_pct = $5, progress_msg = $6, progress_at = {now}
WHERE queue = $2 AND id = $3 AND token = $4 AND (state || '') = 'active' AND lease_until > {now}`

// completeSQL marks a batch of leased jobs done with their outputs,
// counts them, and drops their while-active unique holds; it returns the
// leases it completed. It reads its arrays through a subquery (OFFSET 0
// keeps it one) so that the planner cannot count their elements: a custom
// plan then costs what the generic one does, and the prepared statement
// settles on its generic plan after five runs instead of planning every
// batch, which cost about 200 µs of server CPU per round
// (TestCompleteKeepsItsGenericPlan). $1 now, $2 queues, $3 ids, $4 tokens (text
// arrays, one element a lease), $5 outputs (bytea array, NULL for none).
const completeSQL = `WITH c AS (UPDATE {jobs} j SET state = 'done', finished_at = {now}, token = NULL, lease_until = NULL, output = c.output
  FROM (SELECT $2::text[] AS q, $3::text[] AS i, $4::text[] AS t, $5::bytea[] AS o OFFSET 0) a,
    unnest(a.q, a.i, a.t, a.o) AS c(queue, id, token, output)
  WHERE j.queue = c.queue AND j.id = c.id AND j.token = c.token AND (j.state || '') = 'active' AND j.lease_until > {now}
  RETURNING c.queue, c.id, c.token, j.unique_key, j.unique_active),
n AS (INSERT INTO {counts} AS k (queue, done) SELECT queue, count(*) FROM c GROUP BY queue ORDER BY queue
  ON CONFLICT (queue) DO UPDATE SET done = k.done + EXCLUDED.done),
u AS (DELETE FROM {unique} h USING c WHERE c.unique_active AND h.queue = c.queue AND h.unique_key = c.unique_key AND h.job_id = c.id)
SELECT queue, id, token FROM c`

// failSQL records a failed attempt: the job dies ($7, or out of
// attempts, giving up its while-active unique hold) or is retried at $6;
// it returns 1 if the lease was held. $1 now, $2 queue, $3 id, $4 token,
// $5 the error, $6 retry at, $7 dead.
const failSQL = `WITH f AS (UPDATE {jobs} SET
  state = CASE WHEN $7 OR attempt >= max_attempts THEN 'dead' WHEN $6::timestamptz <= {now} THEN 'pending' ELSE 'retry' END,
  finished_at = CASE WHEN $7 OR attempt >= max_attempts THEN {now} END,
  run_at = $6, last_error = $5, token = NULL, lease_until = NULL
  WHERE queue = $2 AND id = $3 AND token = $4 AND (state || '') = 'active' AND lease_until > {now}
  RETURNING queue, id, state, unique_key, unique_active),
u AS (DELETE FROM {unique} h USING f WHERE f.state = 'dead' AND f.unique_active AND h.queue = f.queue AND h.unique_key = f.unique_key AND h.job_id = f.id)
SELECT count(*) FROM f`

// jobSQL reads one job, reporting a scheduled or retry job whose time has
// come as pending (it waits only for a worker), like Counts does; the
// columns are jobColumns'. $1 now, $2 queue, $3 id.
const jobSQL = `SELECT j.queue, j.id, j.kind, j.payload, j.priority,
CASE WHEN j.state IN ('scheduled', 'retry') AND j.run_at <= {now} THEN 'pending' ELSE j.state END,
j.attempt, j.max_attempts, j.run_at, j.timeout_ms,
coalesce(j.unique_key, ''), j.unique_until, j.enqueued_at, j.last_error, j.finished_at, j.token, j.lease_until, j.unique_active,
j.snoozes, j.started_at, j.progress_pct, j.progress_msg, j.progress_at, j.output, j.metadata
FROM {jobs} j WHERE j.queue = $2 AND j.id = $3`

// countsSQL counts a queue's jobs per state on the partial indexes (each
// state IN (...) repeats an index's predicate so the planner uses it),
// the done ones from the counter, and the age of the oldest due job (ms).
// Columns: due (pending), scheduled, active, retry, dead, done, oldest,
// cancelled.
// $1 now, $2 queue.
const countsSQL = `SELECT
  (SELECT count(*) FROM {jobs} WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry') AND run_at <= {now})
    + (SELECT count(*) FROM {jobs} WHERE queue = $2 AND state = 'active' AND lease_until <= {now}),
  (SELECT count(*) FROM {jobs} WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry') AND state = 'scheduled' AND run_at > {now}),
  (SELECT count(*) FROM {jobs} WHERE queue = $2 AND state = 'active' AND lease_until > {now}),
  (SELECT count(*) FROM {jobs} WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry') AND state = 'retry' AND run_at > {now}),
  (SELECT count(*) FROM {jobs} WHERE queue = $2 AND state IN ('done', 'dead') AND state = 'dead'),
  coalesce((SELECT done FROM {counts} WHERE queue = $2), 0),
  coalesce(extract(epoch FROM {now} - (SELECT min(run_at) FROM {jobs}
    WHERE queue = $2 AND state IN ('pending', 'scheduled', 'retry') AND run_at <= {now})) * 1000, 0),
  (SELECT count(*) FROM {jobs} WHERE queue = $2 AND state = 'cancelled')`

// deadSQL lists dead jobs, most recent first. $1 queue, $2 limit.
const deadSQL = `SELECT {job_columns} FROM {jobs} j WHERE j.queue = $1 AND j.state = 'dead' ORDER BY j.finished_at DESC, j.id DESC LIMIT $2`

// requeueSQL makes a dead or cancelled job pending again with a fresh
// attempt count. $1 now, $2 queue, $3 id.
const requeueSQL = `UPDATE {jobs} SET state = 'pending', attempt = 0, run_at = {now}, finished_at = NULL
WHERE queue = $2 AND id = $3 AND state IN ('dead', 'cancelled')`

// cancelSQL cancels a job that has not finished (an active one loses its
// lease: the fenced statements no longer match it) and drops its
// while-active unique hold; it returns how many jobs it cancelled.
// $1 now, $2 queue, $3 id.
const cancelSQL = `WITH c AS (UPDATE {jobs} SET state = 'cancelled', finished_at = {now}, token = NULL, lease_until = NULL
  WHERE queue = $2 AND id = $3 AND state IN ('pending', 'scheduled', 'retry', 'active')
  RETURNING queue, id, unique_key, unique_active),
u AS (DELETE FROM {unique} h USING c WHERE c.unique_active AND h.queue = c.queue AND h.unique_key = c.unique_key AND h.job_id = c.id)
SELECT count(*) FROM c`

// pauseSQL marks a queue paused. $1 queue.
const pauseSQL = `INSERT INTO {paused} (queue) VALUES ($1) ON CONFLICT (queue) DO NOTHING`

// resumeSQL removes a queue's pause mark. $1 queue.
const resumeSQL = `DELETE FROM {paused} WHERE queue = $1`

// pausedSQL reads whether a queue is paused. $1 queue.
const pausedSQL = `SELECT EXISTS (SELECT 1 FROM {paused} WHERE queue = $1)`

// cancelStateSQL reads the state of a job cancelSQL did not cancel.
// $1 queue, $2 id.
const cancelStateSQL = `SELECT state FROM {jobs} WHERE queue = $1 AND id = $2`

// deleteSQL removes a job with its unique hold, keeping the done counter;
// it returns how many jobs it deleted. $1 queue, $2 id.
const deleteSQL = `WITH d AS (DELETE FROM {jobs} WHERE queue = $1 AND id = $2 RETURNING queue, id, unique_key, state),
  u AS (DELETE FROM {unique} h USING d WHERE h.queue = d.queue AND h.unique_key = d.unique_key AND h.job_id = d.id),
  n AS (UPDATE {counts} k SET done = k.done - 1 FROM d WHERE d.state = 'done' AND k.queue = d.queue)
SELECT count(*) FROM d`

// sweepJobsSQL deletes the done, dead and cancelled jobs past their
// retention (cancelled ones: the dead retention),
// keeping the done counters; it returns how many it deleted. $1 now,
// $2 retention (ms), $3 dead retention (ms).
const sweepJobsSQL = `WITH d AS (DELETE FROM {jobs} WHERE (state = 'done' AND finished_at <= {now} - $2 * interval '1 millisecond')
    OR (state = 'dead' AND finished_at <= {now} - $3 * interval '1 millisecond')
    OR (state = 'cancelled' AND finished_at <= {now} - $3 * interval '1 millisecond')
  RETURNING queue, state),
n AS (UPDATE {counts} k SET done = k.done - x.n
  FROM (SELECT queue, count(*) AS n FROM d WHERE state = 'done' GROUP BY queue) x WHERE k.queue = x.queue)
SELECT count(*) FROM d`

// sweepUniqueSQL deletes the unique holds that no longer hold: expired,
// or while-active of a finished (or deleted) job. $1 now.
const sweepUniqueSQL = `DELETE FROM {unique} u WHERE until <= {now} OR (until = 'infinity' AND NOT EXISTS (
  SELECT 1 FROM {jobs} h WHERE h.queue = u.queue AND h.id = u.job_id AND h.state NOT IN ('done', 'dead', 'cancelled')))`
