package scalekittest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// NATSOptions configures StartNATS. The zero value starts a nats-server
// with JetStream on, its streams kept in the server's temp dir.
type NATSOptions struct {
	// Args are extra nats-server arguments appended to the defaults
	// (-a 127.0.0.1 -p <port> -js -sd <dir>), e.g. []string{"-DV"}.
	// Default: none.
	Args []string
	// Port is the client port to listen on. Default: 0, a free port.
	Port int
	// StartTimeout bounds the wait for the server to greet a client with
	// JetStream on. Default: 15s.
	StartTimeout time.Duration
}

// NATSServer is one nats-server process with JetStream on 127.0.0.1, its
// store in its own temp dir. Stop and Start keep the port and the store,
// so clients reconnect after an outage and find their streams again. Its
// methods are safe for concurrent use. The package imports no NATS
// client: connect with the one you use, to URL.
type NATSServer struct {
	bin     string
	dir     string
	args    []string
	timeout time.Duration

	daemon
}

// StartNATS starts a nats-server with JetStream (-js, the store under a
// temp dir) and waits until it greets a client with JetStream on. Close
// stops it and removes its files. It returns an error wrapping
// ErrMissingBinary when nats-server is not installed (PATH, then
// /usr/sbin, where Debian's package puts it).
func StartNATS(ctx context.Context, opts NATSOptions) (*NATSServer, error) {
	bin, dir, err := prepare("nats-server", "scalekit-nats-*", "/usr/sbin", "/usr/local/sbin")
	if err != nil {
		return nil, err
	}
	s := &NATSServer{daemon: daemon{what: "nats-server"}, bin: bin, dir: dir, args: opts.Args, timeout: opts.StartTimeout}
	if s.timeout <= 0 {
		s.timeout = 15 * time.Second
	}
	if err := s.bind(opts.Port, func() error { return s.start(ctx) }); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *NATSServer) start(ctx context.Context) error {
	args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-js", "-sd", filepath.Join(s.dir, "jetstream")}
	args = append(args, s.args...)
	return s.launch(ctx, s.timeout, s.bin, filepath.Join(s.dir, "nats.log"), args, func(ctx context.Context) error { return natsGreeting(ctx, s.addr()) })
}

// natsGreeting reads the INFO line a NATS server sends on connect, without
// a client library, and checks that it announces JetStream.
func natsGreeting(ctx context.Context, addr string) error {
	c, err := probe(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "INFO ") {
		return fmt.Errorf("greeting %q is not INFO", strings.TrimSpace(line))
	}
	if !strings.Contains(line, `"jetstream":true`) {
		return fmt.Errorf("JetStream is not on yet: %s", strings.TrimSpace(line))
	}
	return nil
}

// URL is the nats:// URL clients connect to.
func (s *NATSServer) URL() string { return "nats://" + s.Addr() }

// Stop shuts the server down (SIGTERM), dropping every connection; the
// streams stay on disk. Start brings it back on the same port with them.
func (s *NATSServer) Stop() error {
	s.halt(syscall.SIGTERM, 10*time.Second, false)
	return nil
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *NATSServer) Kill() error {
	s.halt(syscall.SIGKILL, 5*time.Second, false)
	return nil
}

// Start restarts a stopped server on the same port and store, and waits
// for its greeting. Starting a running server is a no-op.
func (s *NATSServer) Start(ctx context.Context) error { return s.restart(ctx, s.start) }

// Close stops the server and removes its files. It is idempotent.
func (s *NATSServer) Close() error { return s.closeDir(s.dir) }
