package scalekittest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures StartRedis. The zero value starts a plain
// redis-server that keeps nothing on disk.
type RedisOptions struct {
	// Args are extra redis-server arguments appended to the defaults
	// (--save "" --appendonly no), e.g. []string{"--maxmemory", "64mb"}.
	// Default: none.
	Args []string
	// Port is the port to listen on. Default: 0, a free port.
	Port int
	// StartTimeout bounds the wait for the server to answer PING.
	// Default: 15s.
	StartTimeout time.Duration
}

// RedisServer is one redis-server process on 127.0.0.1 with its own temp
// dir. Stop and Start keep the port, so clients reconnect after an outage.
// Its methods are safe for concurrent use.
type RedisServer struct {
	bin     string
	dir     string
	args    []string
	timeout time.Duration

	daemon
}

// StartRedis starts a redis-server and waits until it answers PING. Close
// stops it and removes its files. It returns an error wrapping
// ErrMissingBinary when redis-server is not installed.
func StartRedis(ctx context.Context, opts RedisOptions) (*RedisServer, error) {
	bin, dir, err := prepare("redis-server", "scalekit-redis-*")
	if err != nil {
		return nil, err
	}
	s := &RedisServer{daemon: daemon{what: "redis-server"}, bin: bin, dir: dir, args: opts.Args, timeout: opts.StartTimeout}
	if s.timeout <= 0 {
		s.timeout = 15 * time.Second
	}
	if err := s.bind(opts.Port, func() error { return s.start(ctx) }); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func (s *RedisServer) start(ctx context.Context) error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", s.dir,
		"--daemonize", "no",
		"--protected-mode", "no",
		"--logfile", "",
	}
	args = append(args, s.args...)
	return s.launch(ctx, s.timeout, s.bin, filepath.Join(s.dir, "redis.log"), args, func(ctx context.Context) error { return rawPing(ctx, s.addr()) })
}

// rawPing sends PING over a fresh connection, without a client library, so
// readiness never depends on a client's reconnect back-off.
func rawPing(ctx context.Context, addr string) error {
	c, err := probe(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if got := string(buf[:n]); !strings.HasPrefix(got, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(got))
	}
	return nil
}

// URL is a redis:// URL for database 0.
func (s *RedisServer) URL() string { return "redis://" + s.Addr() + "/0" }

// NewClient returns a go-redis client for database db that honours ctx
// deadlines on reads and writes. The caller closes it.
func (s *RedisServer) NewClient(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr(), DB: db, ContextTimeoutEnabled: true})
}

// Stop shuts the server down (SIGTERM; nothing is saved), dropping every
// connection. Start brings it back on the same port, empty.
func (s *RedisServer) Stop() error {
	s.halt(syscall.SIGTERM, 5*time.Second, false)
	return nil
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *RedisServer) Kill() error {
	s.halt(syscall.SIGKILL, 5*time.Second, false)
	return nil
}

// Start restarts a stopped server on the same port and waits for PING.
// Starting a running server is a no-op.
func (s *RedisServer) Start(ctx context.Context) error { return s.restart(ctx, s.start) }

// Close stops the server and removes its files. It is idempotent.
func (s *RedisServer) Close() error { return s.closeDir(s.dir) }
