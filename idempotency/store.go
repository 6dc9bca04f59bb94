package idempotency

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/expiring"
	"github.com/scalekit-go/scalekit/internal/token"
)

// ErrInvalid is wrapped by every error about bad options or arguments.
var ErrInvalid = errors.New("idempotency: invalid")

// ErrInProgress is returned (wrapped in an *InProgressError) when the
// same key is being executed right now by another caller.
var ErrInProgress = errors.New("idempotency: in progress")

// ErrMismatch is returned when a key is reused with a different request
// (another fingerprint): a client bug, never executed.
var ErrMismatch = errors.New("idempotency: key reused with a different request")

// ErrLeaseLost is returned by Complete, Release and Extend when the token
// no longer holds the key: the lease expired and another caller took over
// (or the record expired).
var ErrLeaseLost = errors.New("idempotency: lease lost")

// ErrUnavailable wraps a Store failure: the Store could not say whether
// the key ran, so the work is not run (fail closed).
var ErrUnavailable = errors.New("idempotency: store unavailable")

// InProgressError is ErrInProgress with when to try again.
type InProgressError struct {
	Key        string
	RetryAfter time.Duration
}

// Error says the key is running and when to retry.
func (e *InProgressError) Error() string {
	return "idempotency: key " + strconv.Quote(e.Key) + " is in progress, retry after " + e.RetryAfter.String()
}

// Is makes errors.Is(err, ErrInProgress) true.
func (e *InProgressError) Is(target error) bool { return target == ErrInProgress }

// Status is what Begin found.
type Status int

const (
	// Started means the caller holds the key's lease (Outcome.Token) and
	// runs the work, then calls Complete or Release.
	Started Status = iota + 1
	// Running means another caller holds the lease; Outcome.RetryAfter is
	// when it expires.
	Running
	// Completed means the work ran; Outcome.Result is what it stored.
	Completed
	// Mismatch means the key was used with another fingerprint.
	Mismatch
)

// String names the status.
func (s Status) String() string {
	switch s {
	case Started:
		return "started"
	case Running:
		return "running"
	case Completed:
		return "completed"
	case Mismatch:
		return "mismatch"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// Outcome is the result of Store.Begin.
type Outcome struct {
	Status Status
	// Token fences the caller's lease (Started only).
	Token string
	// Result is the stored result (Completed only).
	Result []byte
	// RetryAfter is how long the running lease has left (Running only).
	RetryAfter time.Duration
}

// Store keeps idempotency records: per key a fingerprint, a state
// (running under a lease, or completed with a result) and an expiry. The
// check of the fingerprint and the state is one atomic step (Begin), never
// a read followed by a write. MemoryStore is the in-process Store;
// idempotencyredis and idempotencypg are the shared ones;
// idempotencytest is the conformance suite. Every method may be called
// concurrently.
type Store interface {
	// Begin looks key up and, atomically: with no record (or an expired
	// one) creates a running record with fingerprint, a lease of lease and
	// an expiry of ttl, and returns Started with its token; with a record
	// of another fingerprint returns Mismatch; with a completed record
	// returns Completed and its result; with a running record whose lease
	// expired takes it over (Started, a new token); otherwise Running.
	Begin(ctx context.Context, key, fingerprint string, lease, ttl time.Duration) (Outcome, error)
	// Complete stores result for key and marks it completed for ttl, if
	// token still holds the lease (else ErrLeaseLost).
	Complete(ctx context.Context, key, token string, result []byte, ttl time.Duration) error
	// Release gives the lease back: it deletes key's record if token
	// holds the lease, so a retry runs the work again (else ErrLeaseLost).
	Release(ctx context.Context, key, token string) error
	// Extend renews the lease of a running key to lease from now, if token
	// holds it (else ErrLeaseLost).
	Extend(ctx context.Context, key, token string, lease time.Duration) error
}

// MemoryStoreOptions configures NewMemoryStore. The zero value works.
type MemoryStoreOptions struct {
	// Clock replaces the system clock (see package clock); nil is the real
	// time.
	Clock clock.Clock
}

// MemoryStore is a Store in process memory, for a single instance and for
// tests. Expired records are dropped when touched and by a sweep every
// 1024 writes.
type MemoryStore struct {
	clk  clock.Clock
	mu   sync.Mutex
	recs expiring.Map[*memRecord]
}

type memRecord struct {
	fp, token  string
	done       bool
	result     []byte
	leaseUntil time.Time
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(o MemoryStoreOptions) *MemoryStore {
	return &MemoryStore{clk: o.Clock}
}

// Begin is Store.Begin.
func (s *MemoryStore) Begin(_ context.Context, key, fingerprint string, lease, ttl time.Duration) (Outcome, error) {
	now := clock.Now(s.clk)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, _ := s.recs.Get(key, now)
	switch {
	case r == nil:
		r = &memRecord{fp: fingerprint}
		s.recs.Set(key, r, now, ttl)
	case r.fp != fingerprint:
		return Outcome{Status: Mismatch}, nil
	case r.done:
		return Outcome{Status: Completed, Result: append([]byte(nil), r.result...)}, nil
	case now.Before(r.leaseUntil):
		return Outcome{Status: Running, RetryAfter: r.leaseUntil.Sub(now)}, nil
	}
	r.token = token.New()
	r.leaseUntil = now.Add(lease)
	return Outcome{Status: Started, Token: r.token}, nil
}

func (s *MemoryStore) held(key, token string, now time.Time) (*memRecord, error) {
	r, _ := s.recs.Get(key, now)
	if r == nil || r.done || r.token != token {
		return nil, ErrLeaseLost
	}
	return r, nil
}

// Complete is Store.Complete.
func (s *MemoryStore) Complete(_ context.Context, key, token string, result []byte, ttl time.Duration) error {
	now := clock.Now(s.clk)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.held(key, token, now)
	if err != nil {
		return err
	}
	r.done, r.result = true, append([]byte(nil), result...)
	s.recs.Set(key, r, now, ttl)
	return nil
}

// Release is Store.Release.
func (s *MemoryStore) Release(_ context.Context, key, token string) error {
	now := clock.Now(s.clk)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.held(key, token, now); err != nil {
		return err
	}
	s.recs.Delete(key)
	return nil
}

// Extend is Store.Extend.
func (s *MemoryStore) Extend(_ context.Context, key, token string, lease time.Duration) error {
	now := clock.Now(s.clk)
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.held(key, token, now)
	if err != nil {
		return err
	}
	r.leaseUntil = now.Add(lease)
	return nil
}

var _ Store = (*MemoryStore)(nil)
