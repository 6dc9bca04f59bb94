package queuepg

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/queue"
)

// The statements of List and Queues, filled in by sqlFor like the others.

// listSQL is one call of List: it scans at most $3 of the queue's jobs
// by id from the highest (a backward range of the primary key, (queue,
// id): the cost is $3 index entries whatever the size of the queue),
// keeps the first $6 that match the kind $4 and the state $5 (empty:
// any; the state as jobSQL and countsSQL report it: a due scheduled or
// retry job and an expired lease are pending), and returns them with the
// scan's size and its lowest id on every row. When none matches it
// returns one row with NULL job columns. {before} is empty for the first
// page and listBeforeSQL for the next ones (a second statement, not an
// "$7 IS NULL OR" that would keep a generic plan off the index).
// Columns: scanned, lowest scanned id, reported state, jobColumns.
// $1 now, $2 queue, $3 scan budget, $4 kind, $5 state, $6 max matches,
// [$7 before].
const listSQL = `WITH s AS (
  SELECT j.id, j.kind, CASE WHEN j.state IN ('scheduled', 'retry') AND j.run_at <= {now} THEN 'pending'
    WHEN j.state = 'active' AND j.lease_until <= {now} THEN 'pending' ELSE j.state END AS st
  FROM {jobs} j WHERE j.queue = $2 {before} ORDER BY j.id DESC LIMIT $3),
m AS (SELECT s.id, s.st FROM s WHERE ($4::text = '' OR s.kind = $4) AND ($5::text = '' OR s.st = $5) ORDER BY s.id DESC LIMIT $6),
e AS (SELECT count(*) AS n, coalesce(min(s.id), '') AS last FROM s)
SELECT e.n, e.last, m.st, {job_columns}
FROM e LEFT JOIN (m JOIN {jobs} j ON j.queue = $2 AND j.id = m.id) ON true
ORDER BY j.id DESC`

// listBeforeSQL is listSQL's {before} for the pages after the first.
const listBeforeSQL = `AND j.id < $7`

// queuesSQL lists the queues: those with jobs, read by a skip scan of the
// primary key (one index probe per queue, not a scan of the jobs), the
// paused ones and those with a done counter. No parameters.
const queuesSQL = `WITH RECURSIVE q AS (
  (SELECT queue FROM {jobs} ORDER BY queue LIMIT 1)
  UNION ALL
  SELECT (SELECT j.queue FROM {jobs} j WHERE j.queue > q.queue ORDER BY j.queue LIMIT 1) FROM q WHERE q.queue IS NOT NULL)
SELECT queue FROM q WHERE queue IS NOT NULL
UNION SELECT queue FROM {paused}
UNION SELECT queue FROM {counts}`

// listStatements fills in listSQL (first page, next pages) and queuesSQL.
func listStatements(r replacer) (first, next, queues string) {
	return r.Replace(strings.Replace(listSQL, "{before}", "", 1)), r.Replace(strings.Replace(listSQL, "{before}", listBeforeSQL, 1)),
		r.Replace(queuesSQL)
}

// List is queue.Backend.List: one statement on a backward range of the
// primary key. An unfiltered page reads Limit+1 rows; a filtered one
// examines at most queue.ListScanBudget jobs (or Limit+1 if more) and
// may return fewer than Limit with a next id, where the rest continues.
// The ids compare in the jobs table's collation (byte order under the C
// locale; the ids Enqueue makes compare alike in every locale).
func (b *Backend) List(ctx context.Context, q queue.ListQuery) ([]*queue.Message, string, error) {
	budget := q.Limit + 1
	if q.State != "" || q.Kind != "" {
		budget = max(budget, queue.ListScanBudget)
	}
	sql, args := b.sql().list, []any{b.now(), q.Queue, budget, q.Kind, string(q.State), q.Limit + 1}
	if q.Before != "" {
		sql, args = b.sql().listBefore, append(args, q.Before)
	}
	rows, err := b.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var (
		out     []*queue.Message
		scanned int
		last    string
	)
	for rows.Next() {
		if rows.RawValues()[3] == nil { // no job matched: the summary alone
			dest := make([]any, len(rows.FieldDescriptions()))
			dest[0], dest[1] = &scanned, &last
			if err := rows.Scan(dest...); err != nil {
				return nil, "", err
			}
			continue
		}
		var st string
		m, _, _, err := scanJob(prefixed{rows, []any{&scanned, &last, &st}})
		if err != nil {
			return nil, "", err
		}
		m.State = queue.State(st)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	switch {
	case len(out) > q.Limit:
		out = out[:q.Limit]
		return out, out[q.Limit-1].ID, nil
	case scanned >= budget:
		return out, last, nil
	}
	return out, "", nil
}

// prefixed is a row whose first columns go to extra before scanJob's.
type prefixed struct {
	rows  pgx.Rows
	extra []any
}

func (p prefixed) Scan(dest ...any) error {
	return p.rows.Scan(append(slices.Clip(p.extra), dest...)...)
}

// Queues is queue.Backend.Queues: one statement, a probe of the primary
// key per queue (no scan of the jobs, nothing on the enqueue path), with
// the paused queues and those with a done counter (a queue whose jobs
// were all swept stays listed once one completed).
func (b *Backend) Queues(ctx context.Context) ([]string, error) {
	rows, err := b.pool.Query(ctx, b.sql().queues)
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	slices.Sort(out) // byte order, whatever the collation
	return out, nil
}
