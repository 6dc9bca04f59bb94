package queuepg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/queuex"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/queue"
)

// eventStatements are the statements of the events (queue.Client.Publish),
// their names filled in as sqlFor does, plus {subscriptions}: the table
// <Prefix>_subscriptions.
type eventStatements struct {
	migrate, subscribe, unsubscribe, subscribers, publish string
}

func eventSQLFor(prefix, tag string) eventStatements {
	rr := strings.NewReplacer("{jobs}", prefix+"_jobs", "{subscriptions}", prefix+"_subscriptions", "{now}", serverclock.SQL(1))
	r := replacer(func(s string) string { return tag + rr.Replace(s) })
	return eventStatements{migrate: r.Replace(migrateEventsSQL), subscribe: r.Replace(subscribeSQL),
		unsubscribe: r.Replace(unsubscribeSQL), subscribers: r.Replace(subscribersSQL), publish: r.Replace(publishSQL)}
}

// migrateEventsSQL creates the subscriptions: one row per (topic, queue),
// read by publishSQL through the primary key. No parameters.
const migrateEventsSQL = `
CREATE TABLE IF NOT EXISTS {subscriptions} (
  topic         text NOT NULL,
  queue         text NOT NULL,
  subscribed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, queue)
)`

// subscribeSQL adds a subscription. $1 topic, $2 queue.
const subscribeSQL = `INSERT INTO {subscriptions} (topic, queue) VALUES ($1, $2) ON CONFLICT (topic, queue) DO NOTHING`

// unsubscribeSQL removes a subscription. $1 topic, $2 queue.
const unsubscribeSQL = `DELETE FROM {subscriptions} WHERE topic = $1 AND queue = $2`

// subscribersSQL lists a topic's queues. $1 topic.
const subscribersSQL = `SELECT queue FROM {subscriptions} WHERE topic = $1 ORDER BY queue`

// publishSQL stores a copy of one event in every queue subscribed to the
// topic, in one statement (INSERT ... SELECT from the subscriptions), so
// it is atomic and runs inside the caller's transaction. A queue whose id
// is used keeps its job. It returns one row per subscribed queue, in
// queue order: status ('ok' stored, 'again' the same job is there,
// 'exists' another job has the id, 'race' the id was taken by a
// transaction that committed during the statement: the caller looks
// again) and the transaction's id for a stored copy. The times are
// absolute, or NULL to be read from {now}: $7 run_at, $9 enqueued_at.
// $1 now, $2 topic, $3 id, $4 kind, $5 payload, $6 priority, $7 run_at,
// $8 max_attempts, $9 enqueued_at, $10 metadata (JSON object, NULL for
// none).
const publishSQL = `WITH s AS (SELECT queue FROM {subscriptions} WHERE topic = $2),
t AS (SELECT coalesce($7::timestamptz, {now}) AS run_at, coalesce($9::timestamptz, {now}) AS enqueued_at),
ins AS (INSERT INTO {jobs} (queue, id, kind, payload, priority, state, attempt, max_attempts, run_at, timeout_ms,
    enqueued_at, metadata)
  SELECT s.queue, $3::text, $4::text, $5::bytea, $6::int2, CASE WHEN t.run_at > {now} THEN 'scheduled' ELSE 'pending' END,
    0, $8::int4, t.run_at, 0, t.enqueued_at, $10::jsonb
  FROM s, t ORDER BY s.queue
  ON CONFLICT (queue, id) DO NOTHING
  RETURNING queue)
SELECT s.queue,
  CASE WHEN ins.queue IS NOT NULL THEN 'ok'
    WHEN j.kind IS NOT NULL THEN CASE WHEN j.kind = $4 AND j.payload = $5 THEN 'again' ELSE 'exists' END
    ELSE 'race' END,
  CASE WHEN ins.queue IS NOT NULL THEN pg_current_xact_id()::text ELSE '' END
FROM s LEFT JOIN ins ON ins.queue = s.queue
  LEFT JOIN LATERAL (SELECT j.kind, j.payload FROM {jobs} j WHERE ins.queue IS NULL AND j.queue = s.queue AND j.id = $3) j ON true
ORDER BY s.queue`

// Subscribe is queue.Backend.Subscribe: a row in <Prefix>_subscriptions.
func (b *Backend) Subscribe(ctx context.Context, topic, queueName string) error {
	_, err := b.pool.Exec(ctx, b.ev().subscribe, topic, queueName)
	return err
}

// Unsubscribe is queue.Backend.Unsubscribe.
func (b *Backend) Unsubscribe(ctx context.Context, topic, queueName string) error {
	_, err := b.pool.Exec(ctx, b.ev().unsubscribe, topic, queueName)
	return err
}

// Subscribers is queue.Backend.Subscribers: one primary-key range read.
func (b *Backend) Subscribers(ctx context.Context, topic string) ([]string, error) {
	rows, err := b.pool.Query(ctx, b.ev().subscribers, topic)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Publish is queue.Backend.Publish: one statement stores every copy, in
// one transaction of its own; the waiting workers of the queues are
// notified after it committed.
func (b *Backend) Publish(ctx context.Context, topic string, m *queue.Message) ([]string, error) {
	queues, stored, _, err := b.publish(ctx, b.pool, topic, m, false)
	for _, q := range stored {
		b.notify(q)
	}
	return queues, err
}

// PublishTx publishes an event inside tx, in one statement, as
// queue.Client.Publish does (same jobs, same options and result): the
// copies exist in the subscriber queues, and their workers are woken (as
// for EnqueueTx), only if tx commits, so the event is published exactly
// when the business change it announces is: a transactional outbox
// without a relay process. The subscriptions are read by the statement,
// in tx's snapshot. The jobs' times are tx's now() (or Options.Clock
// when set). The client middleware does not run (there is no Client);
// set the metadata in o.
func (b *Backend) PublishTx(ctx context.Context, tx pgx.Tx, topic string, event any, o queue.PublishOptions) (queue.Published, error) {
	m, err := queue.NewEvent(clock.Now(b.clk), topic, event, o)
	if err != nil {
		return queue.Published{}, err
	}
	queues, stored, xid, err := b.publish(ctx, tx, topic, m, b.clk == nil)
	if xid != "" {
		for _, q := range stored {
			b.notifyAfter(xid, q)
		}
	}
	return queue.Published{ID: m.ID, Queues: queues}, err
}

// publish runs publishSQL for m (its times read from the statement's
// now() when fromNow) and returns the queues holding the event, those
// where this statement stored it, and the transaction's id (empty when
// it stored nothing).
func (b *Backend) publish(ctx context.Context, q querier, topic string, m *queue.Message, fromNow bool) (queues, stored []string, xid string, err error) {
	if err := queuex.CheckName(queue.ErrInvalid, "topic", topic); err != nil {
		return nil, nil, "", err
	}
	var runAt, enqueuedAt any = m.RunAt, m.EnqueuedAt
	if fromNow {
		runAt, enqueuedAt = nil, nil
	}
	var metadata []byte // NULL for none
	if len(m.Metadata) > 0 {
		metadata, _ = json.Marshal(m.Metadata) // a map of strings always encodes
	}
	rows, err := q.Query(ctx, b.ev().publish, b.now(), topic, m.ID, m.Kind, m.Payload, int16(m.Priority), runAt,
		m.MaxAttempts, enqueuedAt, metadata)
	if err != nil {
		return nil, nil, "", fmt.Errorf("queuepg: Publish: %w", err)
	}
	type row struct{ queue, status, xid string }
	rs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.queue, &x.status, &x.xid)
		return x, err
	})
	if err != nil {
		return nil, nil, "", fmt.Errorf("queuepg: Publish: %w", err)
	}
	var used []string
	for _, r := range rs {
		status := r.status
		if status == "race" { // the id was taken while the statement ran: the same event, or another job?
			found, err := b.existing(ctx, q, queue.EventCopy(m, r.queue))
			switch {
			case err == nil && found:
				status = "again"
			case err == nil: // deleted since: publishing again delivers it
				return queues, stored, xid, fmt.Errorf("queuepg: Publish: the job %s in queue %s was deleted while the event was published; publish again", m.ID, r.queue)
			case errors.Is(err, queue.ErrInvalid):
				status = "exists"
			default:
				return queues, stored, xid, fmt.Errorf("queuepg: Publish: %w", err)
			}
		}
		switch status {
		case "ok":
			stored = append(stored, r.queue)
			xid = r.xid
			queues = append(queues, r.queue)
		case "again":
			queues = append(queues, r.queue)
		default:
			used = append(used, r.queue)
		}
	}
	if len(used) > 0 {
		return queues, stored, xid, &queue.PublishError{Topic: topic, ID: m.ID, Queues: used}
	}
	return queues, stored, xid, nil
}
