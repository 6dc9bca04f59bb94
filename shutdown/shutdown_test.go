package shutdown

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

type fakeServer struct {
	mu  *sync.Mutex
	log *[]string
	err error
}

func (f fakeServer) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	*f.log = append(*f.log, "shutdown")
	f.mu.Unlock()
	return f.err
}

type drainer struct{ on bool }

func (d *drainer) SetDraining(v bool) { d.on = v }

func TestSequenceOrderAndErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var log []string
		rec := func(s string) func(context.Context) error {
			return func(context.Context) error { mu.Lock(); log = append(log, s); mu.Unlock(); return nil }
		}
		d := &drainer{}
		c, err := New(Options{Readiness: d, DrainDelay: time.Second, Timeout: 10 * time.Second, StepTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		c.RegisterServer("http", fakeServer{&mu, &log, nil})
		c.RegisterCloseFunc("db", rec("db"))
		release := make(chan struct{}) // a Close that ignores its ctx
		defer close(release)
		c.RegisterCloseFunc("stuck", func(context.Context) error { <-release; return nil })
		c.RegisterCloseFunc("cache", func(context.Context) error { return errors.New("flush failed") })
		start := time.Now()
		go func() { time.Sleep(time.Second); c.Trigger(); c.Trigger() }()
		err = c.wait(context.Background(), nil) // signal.Notify cannot run in a bubble
		if !d.on {
			t.Fatal("readiness not drained")
		}
		if took := time.Since(start); took != 2*time.Second+100*time.Millisecond {
			t.Fatalf("took %v, want trigger 1s + drain 1s + stuck close 100ms", took)
		}
		if strings.Join(log, ",") != "shutdown,db" {
			t.Fatalf("steps %v", log)
		}
		if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "close stuck") || !strings.Contains(err.Error(), "close cache: flush failed") {
			t.Fatalf("err = %v", err)
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Done not closed")
		}
	})
}

// TestSecondSignalForcesExit: a second signal during the sequence exits
// with code 1. Issue 15 item 17: the test used to sleep 50ms for Wait to
// subscribe and 50ms between the signals; on a slow runner a signal sent
// before the handler is installed is lost (or, for a signal whose default
// action is to terminate, kills the test binary), and two signals sent
// before the first is handled coalesce into one. It now sends the first
// signal once signal.Notify has returned and the second once the first
// has started the sequence; the "slow runner" case delays the subscription
// to prove it (the old test failed so: no exit after 5s).
func TestSecondSignalForcesExit(t *testing.T) {
	for _, c := range []struct {
		name string
		slow time.Duration // how long subscribing takes
	}{{"fast", 0}, {"slow runner", 200 * time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			exited := make(chan int, 1)
			co, err := New(Options{Signals: []os.Signal{syscall.SIGUSR1}, DrainDelay: time.Hour, Timeout: 2 * time.Hour, Exit: func(code int) { exited <- code }})
			if err != nil {
				t.Fatal(err)
			}
			subscribed := make(chan struct{})
			co.notify = func(ch chan<- os.Signal, sig ...os.Signal) {
				time.Sleep(c.slow) // a slow runner, not a synchronisation
				signal.Notify(ch, sig...)
				close(subscribed)
			}
			go co.Wait(context.Background())
			await := func(ch <-chan struct{}, what string) {
				t.Helper()
				select {
				case <-ch:
				case <-time.After(5 * time.Second):
					t.Fatalf("%s: not after 5s", what)
				}
			}
			await(subscribed, "Wait subscribed to SIGUSR1")
			syscall.Kill(os.Getpid(), syscall.SIGUSR1)
			await(co.trigger, "the first signal started the sequence")
			syscall.Kill(os.Getpid(), syscall.SIGUSR1)
			select {
			case code := <-exited:
				if code != 1 {
					t.Fatalf("exit code %d", code)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("a second signal did not force the exit")
			}
		})
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{{DrainDelay: -1}, {DrainDelay: time.Minute, Timeout: time.Second}, {StepTimeout: -1}} {
		if _, err := New(o); !errors.Is(err, ErrInvalid) {
			t.Errorf("New(%+v) = %v", o, err)
		}
	}
}

// Each registration method takes what it says (a value that fits none does
// not compile), and every resource registered closes, in reverse order: an
// io.Closer, a Close(ctx) error method value, and a pgxpool-like Close()
// with no result through a one-line adapter.
func TestRegister(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var log []string
		c, err := New(Options{DrainDelay: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		pool := &poolLike{log: &log}
		c.RegisterCloseFunc("pool", func(context.Context) error { pool.Close(); return nil })
		c.RegisterCloseFunc("client", ctxCloser{&log}.Close)
		c.RegisterCloser("file", closer{&log})
		c.RegisterServer("http", fakeServer{&mu, &log, nil})
		if len(c.servers) != 1 || len(c.closers) != 3 {
			t.Fatalf("registered %d servers and %d closers, want 1 and 3", len(c.servers), len(c.closers))
		}
		c.Trigger()
		if err := c.wait(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(log, ","); got != "shutdown,file,client,pool" {
			t.Fatalf("steps %v, want shutdown,file,client,pool", got)
		}
	})
}

type poolLike struct{ log *[]string }

func (p *poolLike) Close() { *p.log = append(*p.log, "pool") }

type ctxCloser struct{ log *[]string }

func (c ctxCloser) Close(context.Context) error { *c.log = append(*c.log, "client"); return nil }

type closer struct{ log *[]string }

func (c closer) Close() error { *c.log = append(*c.log, "file"); return nil }
