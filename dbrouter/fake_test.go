package dbrouter

import (
	"context"
	"errors"
	"fmt"
	"github.com/scalekit-go/scalekit/internal/testlog"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// fakeProber answers the monitor from settable values, for tests of the
// routing and health logic without servers.
type fakeProber struct {
	mu         sync.Mutex
	primary    LSN
	primaryErr error
	reps       []replicaStatus
	insert     LSN
	insertErr  error
	onPoll     func(i int, st *replicaStatus) // may change a poll's answer
	inserts    atomic.Int64
	polls      atomic.Int64
	// pst, when set, is the primary's answer instead of primary and
	// primaryErr (a standby, read-only, another timeline).
	pst *replicaStatus
	// tli is the primary's timeline (insertLSN, and primary without pst).
	tli uint32
	// hist is each server's timeline history files; histErr fails them.
	hist    map[uint32]map[uint32]LSN
	histErr error
}

func (f *fakeProber) primaryStatus(context.Context) replicaStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pst != nil {
		return *f.pst
	}
	return replicaStatus{write: f.primary, insert: f.primary, tli: f.tli, err: f.primaryErr}
}

func (f *fakeProber) history(_ context.Context, _ int, tli uint32) (map[uint32]LSN, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.histErr != nil {
		return nil, f.histErr
	}
	h, ok := f.hist[tli]
	if !ok {
		return nil, fmt.Errorf("no history file for timeline %d", tli)
	}
	return h, nil
}

func (f *fakeProber) check(_ context.Context, i int) replicaStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reps[i]
}

func (f *fakeProber) poll(_ context.Context, i int) replicaStatus {
	f.polls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.reps[i]
	if f.onPoll != nil {
		f.onPoll(i, &st)
	}
	return st
}

func (f *fakeProber) insertLSN(context.Context, int) (LSN, uint32, error) {
	f.inserts.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.insert, f.tli, f.insertErr
}

func (f *fakeProber) close() {}

// set changes replica i's answer.
func (f *fakeProber) set(i int, st replicaStatus) {
	f.mu.Lock()
	f.reps[i] = st
	f.mu.Unlock()
}

func (f *fakeProber) setPrimary(l LSN, err error) {
	f.mu.Lock()
	f.primary, f.primaryErr = l, err
	f.mu.Unlock()
}

// up is a healthy replica's answer at lsn.
func up(lsn LSN) replicaStatus { return replicaStatus{lsn: lsn, inRecovery: true} }

var errDown = errors.New("connection refused")

// logBuf is a concurrency-safe log sink.
type logBuf = testlog.Buffer

func newLog() (*slog.Logger, *logBuf) {
	b := &logBuf{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// newFake starts a router over a fake prober with n replicas, all up at
// LSN 100 and the primary at 100. The caller closes it (inside its synctest
// bubble, when it runs in one).
func newFake(t testing.TB, o Options, n int) (*Router, *fakeProber) {
	t.Helper()
	o, err := o.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	fp := &fakeProber{primary: 100, insert: 100}
	var names []string
	for i := range n {
		fp.reps = append(fp.reps, up(100))
		names = append(names, fmt.Sprintf("r%d", i))
	}
	r := newRouter(o, names, fp)
	r.start(context.Background())
	return r, fp
}

// routeName is where route sends a read on ctx: "primary", a replica name,
// or the error.
func routeName(r *Router, ctx context.Context) string {
	rep, err := r.route(ctx)
	switch {
	case err != nil:
		return err.Error()
	case rep == nil:
		return "primary"
	}
	return rep.name
}

// pgconnError is a SQL error, as a statement that failed on the server.
var pgconnError = pgconn.PgError{Code: "23505", Message: "duplicate key"}
