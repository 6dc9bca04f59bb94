package shard

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scalekit-go/scalekit/internal/pause"
)

// ErrMoved is what a write to a virtual shard refused by its old cluster's
// fence Is: the virtual shard moved (or is moving) to another cluster, and
// the write must go there under a newer map. The error is a *MovedError.
var ErrMoved = errors.New("shard: virtual shard moved")

// MovedSQLState is the SQLSTATE the fence trigger raises for a write to a
// virtual shard fenced on that cluster.
const MovedSQLState = "SKM01"

// fenceLockSpace is the first key of the advisory locks (the second is the
// virtual shard) by which the fence waits for the writes in flight: each
// fenced write holds the shared lock until it commits, the mover takes the
// exclusive one to install the fence.
const fenceLockSpace = 0x534b4d56 // "SKMV"

// moverLockSpace is the first key of the session lock (on the config
// database) a Mover holds on the virtual shard it moves.
const moverLockSpace = fenceLockSpace + 1

// MovedError is a write refused by the fence of a virtual shard on its old
// cluster. It Is ErrMoved.
type MovedError struct {
	// VShard is the virtual shard; To the cluster it moved to.
	VShard int
	To     string
	// Err is the PostgreSQL error.
	Err error
}

func (e *MovedError) Error() string {
	return fmt.Sprintf("shard: virtual shard %d moved to cluster %q: write refused by the old cluster", e.VShard, e.To)
}

// Is reports whether target is ErrMoved.
func (e *MovedError) Is(target error) bool { return target == ErrMoved }

// Unwrap returns the PostgreSQL error.
func (e *MovedError) Unwrap() error { return e.Err }

// AsMoved reports whether err is (or wraps) a write refused by a fence:
// a *MovedError, or the PostgreSQL error with SQLSTATE MovedSQLState.
func AsMoved(err error) (*MovedError, bool) {
	var me *MovedError
	if errors.As(err, &me) {
		return me, true
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != MovedSQLState {
		return nil, false
	}
	v, to, _ := strings.Cut(pe.Detail, " ")
	n, _ := strconv.Atoi(v)
	return &MovedError{VShard: n, To: to, Err: err}, true
}

// Do runs fn with the route of k and, when the old cluster's fence refuses
// the write (ErrMoved: the virtual shard moved while fn ran, or r's map is
// older than the move), waits until r's map routes k to another cluster
// and runs fn again there. This is the retry that turns the fence into a
// pause: between the fence and the new map, a write to the moving virtual
// shard waits here. It checks r's map every millisecond or so (a Watch
// installs the new one within milliseconds of its publication) and
// re-reads the stored map itself every 25ms (for a Router nobody
// watches). fn must be safe to run again after a refusal (a refused write
// changed nothing). Other errors are returned as they are; a ctx done
// while waiting returns the *MovedError.
func (s *MapStore) Do(ctx context.Context, r *Router, k Key, fn func(ctx context.Context, rt Route) error) error {
	for {
		rt, err := r.For(k)
		if err != nil {
			return err
		}
		err = fn(ctx, rt)
		me, ok := AsMoved(err)
		if !ok {
			return err
		}
		s.retried.Add(1)
		wait := pause.Growing{Min: 500 * time.Microsecond, Max: 5 * time.Millisecond}
		for lastSync := (time.Time{}); ; {
			if now, _ := r.For(k); now.Cluster != rt.Cluster {
				break
			}
			if time.Since(lastSync) >= 25*time.Millisecond {
				lastSync = time.Now()
				if err := s.Sync(ctx, r); err != nil && ctx.Err() == nil && !errors.Is(err, ErrNoMap) {
					s.log.Warn("shard: Do: map sync failed", "err", err)
				}
				continue
			}
			if !wait.Wait(ctx.Done()) {
				return me
			}
		}
	}
}
