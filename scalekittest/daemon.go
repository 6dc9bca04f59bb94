package scalekittest

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"
)

// daemon is what every server process here shares: the running process
// (nil when stopped) and its port under one mutex, and whether the server
// was closed for good. RedisServer and PGServer embed it; its methods are
// the bodies of their Stop, Kill, Start, Pause, Resume, Running and Port.
type daemon struct {
	what string // for errors: "redis-server", "postgres primary"

	mu     sync.Mutex
	port   int
	p      *proc
	closed bool
}

// Port is the server's TCP port.
func (d *daemon) Port() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.port
}

// Running reports whether the server process is up (a paused one counts).
func (d *daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.p != nil && d.p.alive()
}

// Pause freezes the server (SIGSTOP to its process group): connections stay
// open but nothing answers, as with a hung or overloaded host. Resume
// undoes it.
func (d *daemon) Pause() error { return d.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (d *daemon) Resume() error { return d.signal(syscall.SIGCONT) }

func (d *daemon) signal(sig syscall.Signal) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.p == nil || !d.p.alive() {
		return errors.New("scalekittest: " + d.what + " is not running")
	}
	return d.p.signalGroup(sig)
}

// halt stops the process with sig, waiting up to wait before a kill;
// halting a stopped server does nothing. With forGood the server is also
// marked closed: Start refuses it from then on.
func (d *daemon) halt(sig syscall.Signal, wait time.Duration, forGood bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if forGood {
		d.closed = true
	}
	if d.p != nil {
		d.p.stop(sig, wait)
		d.p = nil
	}
}

// restart runs start (with the mutex held) unless the server is running;
// a closed server is an error.
func (d *daemon) restart(ctx context.Context, start func(context.Context) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("scalekittest: Start on a closed " + d.what)
	}
	if d.p != nil && d.p.alive() {
		return nil
	}
	return start(ctx)
}
