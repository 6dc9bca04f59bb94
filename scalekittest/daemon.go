package scalekittest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
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

// bind runs start on port, or when port is 0 on a free port, trying
// another free port (three in all) when the one picked was taken by
// someone else before the server bound it. It sets d.port.
func (d *daemon) bind(port int, start func() error) error {
	d.port = port
	var err error
	for attempt := 0; ; attempt++ {
		if port == 0 {
			if d.port, err = freePort(); err != nil {
				return err
			}
		}
		if err = start(); err == nil || port != 0 || attempt == 2 || !strings.Contains(err.Error(), "in use") {
			return err
		}
	}
}

// closeDir stops the server for good (SIGKILL) and removes dir, its
// files: the Close of a server with one temp dir. It is idempotent.
func (d *daemon) closeDir(dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.p != nil {
		d.p.stop(syscall.SIGKILL, 5*time.Second)
		d.p = nil
	}
	return os.RemoveAll(dir)
}

// launch starts bin (as the current user, its output in logPath) and
// waits up to timeout for ready to succeed, then makes it d's process;
// a process that never gets ready is killed.
func (d *daemon) launch(ctx context.Context, timeout time.Duration, bin, logPath string, args []string, ready func(context.Context) error) error {
	p, err := runAs{}.startProc(bin, logPath, args...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := waitFor(ctx, p, d.what+" on port "+strconv.Itoa(d.port), ready); err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return err
	}
	d.p = p
	return nil
}

// probe opens a fresh connection to addr for a readiness check, without a
// client library (so readiness never depends on a client's reconnect
// back-off), with a 1s deadline for the exchange.
func probe(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 500 * time.Millisecond}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(time.Second))
	return c, nil
}

// addr is the server's 127.0.0.1 host:port; the caller holds d.mu or
// owns d alone.
func (d *daemon) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)) }

// Addr is the server's host:port.
func (d *daemon) Addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.addr()
}

// prepare finds a server's binary (on PATH, then in extra) and makes its
// temp dir (pattern as for os.MkdirTemp).
func prepare(name, pattern string, extra ...string) (bin, dir string, err error) {
	if bin, err = lookBinary(name, extra...); err != nil {
		return "", "", err
	}
	if dir, err = os.MkdirTemp("", pattern); err != nil {
		return "", "", fmt.Errorf("scalekittest: temp dir: %w", err)
	}
	return bin, dir, nil
}
