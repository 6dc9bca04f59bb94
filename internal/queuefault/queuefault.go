// Package queuefault wraps a queue.Backend to inject faults in tests
// (pgx's faultyconn habit: wrap the real thing instead of mocking it).
package queuefault

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/scalekit-go/scalekit/queue"
)

// ErrLost is the error of a Complete that LoseComplete lost.
var ErrLost = errors.New("queuefault: connection reset (the completion was lost)")

// LoseComplete loses the first Complete of a job Match accepts (any job
// when Match is nil): the handler's effect happened but the queue does
// not record it, and redelivers the job after its lease.
type LoseComplete struct {
	queue.Backend
	Match func(m *queue.Message) bool
	lost  atomic.Bool
}

// Complete is Backend.Complete, except the first matching one.
func (b *LoseComplete) Complete(ctx context.Context, l *queue.Lease, out []byte) error {
	if (b.Match == nil || b.Match(l.Msg)) && b.lost.CompareAndSwap(false, true) {
		return ErrLost
	}
	return b.Backend.Complete(ctx, l, out)
}

// Lost reports whether a completion was lost.
func (b *LoseComplete) Lost() bool { return b.lost.Load() }
