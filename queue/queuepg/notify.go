package queuepg

import (
	"context"
	"log/slog"
	"time"
)

// pendingTx is an EnqueueTx transaction whose commit the notifier waits
// for: once it committed, queue's workers are notified.
type pendingTx struct {
	xid, queue string
	since      time.Time
}

// notify asks for a NOTIFY on queueName, sent by the notifier from its own
// connection, outside any transaction, at most about once per queue per
// millisecond however many enqueues asked.
func (b *Backend) notify(queueName string) {
	if b.pollOnly {
		return
	}
	b.nmu.Lock()
	if b.startNotifier() {
		b.dirty[queueName] = true
	}
	b.nmu.Unlock()
	b.kick()
}

// notifyAfter asks for a NOTIFY on queueName once transaction xid
// committed (none if it rolls back).
func (b *Backend) notifyAfter(xid, queueName string) {
	if b.pollOnly {
		return
	}
	b.nmu.Lock()
	if b.startNotifier() {
		b.pending = append(b.pending, pendingTx{xid: xid, queue: queueName, since: time.Now()})
	}
	b.nmu.Unlock()
	b.kick()
}

func (b *Backend) kick() {
	select {
	case b.nkick <- struct{}{}:
	default:
	}
}

// startNotifier starts the notifier on first use (b.nmu held) and
// reports whether it runs: after Close it does not, and nothing is queued
// for it (the workers poll).
func (b *Backend) startNotifier() bool {
	select {
	case <-b.stop:
		return false
	default:
	}
	if !b.notifying {
		b.notifying = true
		b.bg.Add(1)
		go b.notifier()
	}
	return true
}

// notifier sends the NOTIFYs: every millisecond while there is work, it
// looks up the status of the pending transactions (one query for all),
// then notifies every queue that got a committed job (one query for all).
// A transaction still open after PollInterval is dropped: the workers
// find its job by polling anyway. Errors are logged; the workers' polling
// covers a lost notification.
func (b *Backend) notifier() {
	defer b.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	busy := false // pending transactions remain: look again soon
	for {
		if !busy {
			select {
			case <-b.stop:
				return
			case <-b.nkick:
			}
		}
		t := time.NewTimer(time.Millisecond) // coalesce
		select {
		case <-b.stop:
			t.Stop()
			return
		case <-t.C:
		}
		b.nmu.Lock()
		dirty, pending := b.dirty, b.pending
		b.dirty, b.pending = map[string]bool{}, nil
		b.nmu.Unlock()
		var keep []pendingTx
		if len(pending) > 0 {
			committed, open, err := b.txStatus(ctx, pending)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				b.log.Warn("queuepg: cannot read the status of enqueuing transactions; workers will poll", slog.Any("error", err))
			}
			for _, p := range committed {
				dirty[p.queue] = true
			}
			for _, p := range open {
				if time.Since(p.since) < b.poll {
					keep = append(keep, p)
				}
			}
		}
		if len(dirty) > 0 {
			qs := make([]string, 0, len(dirty))
			for q := range dirty {
				qs = append(qs, q)
			}
			nctx, ncancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := b.pool.Exec(nctx, `SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q`, b.channel, qs)
			ncancel()
			if err != nil && ctx.Err() == nil {
				b.log.Warn("queuepg: NOTIFY failed; workers will poll", slog.Any("error", err))
			}
		}
		b.nmu.Lock()
		b.pending = append(keep, b.pending...)
		busy = len(b.pending) > 0 || len(b.dirty) > 0
		b.nmu.Unlock()
	}
}

// txStatus splits pending into the committed transactions and those
// still in progress (the aborted and unknown ones are dropped).
func (b *Backend) txStatus(ctx context.Context, pending []pendingTx) (committed, open []pendingTx, err error) {
	xids := make([]string, len(pending))
	for i, p := range pending {
		xids[i] = p.xid
	}
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := b.pool.Query(qctx, `SELECT coalesce(pg_xact_status(x::xid8), '') FROM unnest($1::text[]) WITH ORDINALITY AS t(x, i) ORDER BY i`, xids)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	i := 0
	for rows.Next() {
		var st string
		if err := rows.Scan(&st); err != nil {
			return nil, nil, err
		}
		if i < len(pending) {
			switch st {
			case "committed":
				committed = append(committed, pending[i])
			case "in progress":
				open = append(open, pending[i])
			}
		}
		i++
	}
	return committed, open, rows.Err()
}
