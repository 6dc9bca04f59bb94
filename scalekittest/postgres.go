package scalekittest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PostgresOptions configures StartPostgres. The zero value starts a primary
// and one streaming replica.
type PostgresOptions struct {
	// NoReplica starts the primary alone. Default: false (one replica).
	NoReplica bool
	// Settings are extra postgresql.conf settings for both servers, passed
	// as -c name=value, e.g. {"log_min_duration_statement": "0"}.
	// Default: none.
	Settings map[string]string
	// StartTimeout bounds the whole start-up. Default: 90s.
	StartTimeout time.Duration
}

// StopMode is how a PostgreSQL server is shut down (pg_ctl stop -m).
type StopMode int

const (
	// StopFast disconnects clients and shuts down cleanly (SIGINT).
	StopFast StopMode = iota
	// StopImmediate aborts without a checkpoint, as a crash would; the next
	// start runs crash recovery (SIGQUIT).
	StopImmediate
)

// ReplicationSlot is the physical slot the replica streams from.
const ReplicationSlot = "scalekit_replica"

// PostgresCluster is a PostgreSQL primary and, unless NoReplica, one real
// streaming replica made by pg_basebackup -R -X stream -C -S, each its own
// postgres process on 127.0.0.1. Its methods are safe for concurrent use.
type PostgresCluster struct {
	// Primary is the read-write server.
	Primary *PGServer
	// Replica is the hot standby; nil with NoReplica.
	Replica *PGServer

	base string
	acct runAs
}

// PGServer is one postgres server process. Stop and Start keep its port and
// data, so pools reconnect after an outage.
type PGServer struct {
	name    string
	binDir  string
	dataDir string
	sockDir string
	acct    runAs
	args    []string
	timeout time.Duration

	daemon
}

// Name is "primary" or "replica".
func (s *PGServer) Name() string { return s.name }

// StartPostgres initialises a primary (initdb as the postgres user when this
// process is root), starts it with wal_level=replica and fsync=off, takes a
// base backup for the replica and starts it streaming, then waits until the
// primary reports the replica as streaming. Close stops both and removes
// their files. It returns an error wrapping ErrMissingBinary when the
// PostgreSQL server binaries are not installed.
func StartPostgres(ctx context.Context, opts PostgresOptions) (_ *PostgresCluster, err error) {
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 90 * time.Second
	}
	binDir, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	acct, err := postgresAccount()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	base, err := acct.mkTempDir("scalekit-pg-*")
	if err != nil {
		return nil, err
	}
	c := &PostgresCluster{base: base, acct: acct}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()

	settings := map[string]string{
		"listen_addresses":             "127.0.0.1",
		"unix_socket_directories":      base,
		"fsync":                        "off",
		"synchronous_commit":           "off",
		"full_page_writes":             "off",
		"wal_level":                    "replica",
		"max_wal_senders":              "10",
		"max_replication_slots":        "10",
		"hot_standby":                  "on",
		"hot_standby_feedback":         "on",
		"wal_receiver_status_interval": "1s",
		// After its primary goes away a standby retries every this long;
		// the default 5s can hold up a promotion (Promote) as long.
		"wal_retrieve_retry_interval": "100ms",
		"shared_buffers":              "32MB",
		"max_connections":             "200",
		"logging_collector":           "off",
	}
	for k, v := range opts.Settings {
		settings[k] = v
	}
	var args []string
	for k, v := range settings {
		args = append(args, "-c", k+"="+v)
	}

	primaryDir := filepath.Join(base, "primary")
	if err := acct.runTool(ctx, filepath.Join(binDir, "initdb"),
		"-D", primaryDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return nil, err
	}
	c.Primary = &PGServer{daemon: daemon{what: "postgres primary"}, name: "primary", binDir: binDir, dataDir: primaryDir, sockDir: base, acct: acct, args: args, timeout: opts.StartTimeout}
	if err := c.Primary.startFresh(ctx); err != nil {
		return nil, err
	}
	if opts.NoReplica {
		return c, nil
	}

	replicaDir := filepath.Join(base, "replica")
	if err := acct.runTool(ctx, filepath.Join(binDir, "pg_basebackup"),
		"-h", "127.0.0.1", "-p", strconv.Itoa(c.Primary.Port()), "-U", "postgres",
		"-D", replicaDir, "-R", "-X", "stream", "-C", "-S", ReplicationSlot,
		"--checkpoint=fast", "--no-sync"); err != nil {
		return nil, err
	}
	c.Replica = &PGServer{daemon: daemon{what: "postgres replica"}, name: "replica", binDir: binDir, dataDir: replicaDir, sockDir: base, acct: acct, args: args, timeout: opts.StartTimeout}
	if err := c.Replica.startFresh(ctx); err != nil {
		return nil, err
	}
	if err := waitFor(ctx, nil, "replica streaming", c.streaming); err != nil {
		return nil, err
	}
	return c, nil
}

// streaming is nil once the primary sees the replica in state 'streaming'.
func (c *PostgresCluster) streaming(ctx context.Context) error {
	var n int
	err := c.Primary.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").Scan(&n)
	})
	if err != nil {
		return err
	}
	if n == 0 {
		return errors.New("no streaming replica in pg_stat_replication yet")
	}
	return nil
}

// startFresh picks a free port (retrying when another process takes it
// first) and starts the server.
func (s *PGServer) startFresh(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if s.port, err = freePort(); err != nil {
			return err
		}
		if err = s.start(ctx); err == nil || !strings.Contains(err.Error(), "in use") {
			return err
		}
	}
	return err
}

func (s *PGServer) start(ctx context.Context) error {
	args := append([]string{"-D", s.dataDir, "-p", strconv.Itoa(s.port)}, s.args...)
	p, err := s.acct.startProc(filepath.Join(s.binDir, "postgres"), filepath.Join(filepath.Dir(s.dataDir), s.name+".log"), args...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// s.mu may be held here: use the port directly, not URL.
	connURL := pgURL(s.port, "postgres")
	ready := func(ctx context.Context) error {
		return connQuery(ctx, connURL, func(conn *pgx.Conn) error {
			var one int
			return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
		})
	}
	if err := waitFor(ctx, p, "postgres "+s.name+" on port "+strconv.Itoa(s.port), ready); err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		return err
	}
	s.p = p
	return nil
}

// queryRow runs fn on a short-lived connection to database db.
func (s *PGServer) queryRow(ctx context.Context, db string, fn func(*pgx.Conn) error) error {
	return connQuery(ctx, s.URL(db), fn)
}

func connQuery(ctx context.Context, connURL string, fn func(*pgx.Conn) error) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return fn(conn)
}

// Addr is the server's host:port.
func (s *PGServer) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port())) }

// URL is a connection string for database db as the postgres superuser.
func (s *PGServer) URL(db string) string { return pgURL(s.Port(), db) }

func pgURL(port int, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Stop shuts the server down in the given mode and waits for it to exit
// (forcing a kill after 30s). Stopping a stopped server is a no-op.
func (s *PGServer) Stop(mode StopMode) error {
	sig := syscall.SIGINT
	if mode == StopImmediate {
		sig = syscall.SIGQUIT
	}
	s.halt(sig, 30*time.Second, false)
	return nil
}

// Start starts a stopped server on the same port and data directory and
// waits until it accepts queries. Starting a running server is a no-op.
func (s *PGServer) Start(ctx context.Context) error { return s.restart(ctx, s.start) }

func (s *PGServer) close() { s.halt(syscall.SIGQUIT, 10*time.Second, true) }

// Close stops both servers and removes their files. It is idempotent.
func (c *PostgresCluster) Close() error {
	if c.Replica != nil {
		c.Replica.close()
	}
	if c.Primary != nil {
		c.Primary.close()
	}
	if c.base == "" {
		return nil
	}
	err := os.RemoveAll(c.base)
	c.base = ""
	return err
}

// CreateDatabase creates database name on the primary and, with a replica,
// waits until the replica has replayed it.
func (c *PostgresCluster) CreateDatabase(ctx context.Context, name string) error {
	err := c.Primary.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
		return err
	})
	if err != nil {
		return fmt.Errorf("scalekittest: create database %s: %w", name, err)
	}
	if c.Replica != nil {
		return c.WaitReplicaCaughtUp(ctx)
	}
	return nil
}

// DropDatabase drops database name, disconnecting its sessions.
func (c *PostgresCluster) DropDatabase(ctx context.Context, name string) error {
	return c.Primary.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		return err
	})
}

func (c *PostgresCluster) needReplica() error {
	if c.Replica == nil {
		return errors.New("scalekittest: this PostgresCluster has no replica (NoReplica)")
	}
	return nil
}

// PauseReplay pauses WAL replay on the replica (pg_wal_replay_pause) and
// waits until it is paused: the replica keeps receiving WAL but its data
// stops advancing, so it lags the primary.
func (c *PostgresCluster) PauseReplay(ctx context.Context) error {
	if err := c.needReplica(); err != nil {
		return err
	}
	err := c.Replica.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SELECT pg_wal_replay_pause()")
		return err
	})
	if err != nil {
		return fmt.Errorf("scalekittest: pause replay: %w", err)
	}
	return waitFor(ctx, nil, "replay paused", func(ctx context.Context) error {
		var state string
		err := c.Replica.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
			return conn.QueryRow(ctx, "SELECT pg_get_wal_replay_pause_state()").Scan(&state)
		})
		if err == nil && state != "paused" {
			err = fmt.Errorf("replay pause state %q", state)
		}
		return err
	})
}

// ResumeReplay resumes WAL replay on the replica (pg_wal_replay_resume).
func (c *PostgresCluster) ResumeReplay(ctx context.Context) error {
	if err := c.needReplica(); err != nil {
		return err
	}
	err := c.Replica.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "SELECT pg_wal_replay_resume()")
		return err
	})
	if err != nil {
		return fmt.Errorf("scalekittest: resume replay: %w", err)
	}
	return nil
}

// ReplicaLagBytes is how many bytes of WAL the replica has yet to replay:
// the primary's pg_current_wal_insert_lsn() minus the replica's
// pg_last_wal_replay_lsn(). The insert position, not pg_current_wal_lsn()
// (the position written out): the throwaway servers run with
// synchronous_commit=off, so a commit can sit in the WAL buffers, behind
// the write position, for up to wal_writer_delay; a replica paused before
// it would read as caught up.
func (c *PostgresCluster) ReplicaLagBytes(ctx context.Context) (int64, error) {
	if err := c.needReplica(); err != nil {
		return 0, err
	}
	var primaryLSN string
	err := c.Primary.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&primaryLSN)
	})
	if err != nil {
		return 0, fmt.Errorf("scalekittest: primary LSN: %w", err)
	}
	var lag int64
	err = c.Replica.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, "SELECT GREATEST(0, pg_wal_lsn_diff($1::pg_lsn, pg_last_wal_replay_lsn()))::bigint", primaryLSN).Scan(&lag)
	})
	if err != nil {
		return 0, fmt.Errorf("scalekittest: replica LSN: %w", err)
	}
	return lag, nil
}

// WaitReplicaCaughtUp waits until the replica has replayed everything the
// primary had written when it was called. With replay paused it waits until
// ctx ends.
func (c *PostgresCluster) WaitReplicaCaughtUp(ctx context.Context) error {
	if err := c.needReplica(); err != nil {
		return err
	}
	// With synchronous_commit=off, recent commits may sit in WAL buffers
	// behind pg_current_wal_lsn(). A synchronous commit flushes all WAL
	// before it; the flush LSN after it covers every earlier commit.
	var target string
	err := c.Primary.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
				return err
			}
			// A commit that wrote no WAL is not flushed; this record is.
			_, err := tx.Exec(ctx, "SELECT pg_logical_emit_message(true, 'scalekittest', 'flush')")
			return err
		})
	})
	if err == nil {
		err = c.Primary.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
			return conn.QueryRow(ctx, "SELECT pg_current_wal_flush_lsn()::text").Scan(&target)
		})
	}
	if err != nil {
		return fmt.Errorf("scalekittest: primary LSN: %w", err)
	}
	return waitFor(ctx, nil, "replica replay to "+target, func(ctx context.Context) error {
		var ok bool
		err := c.Replica.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
			return conn.QueryRow(ctx, "SELECT COALESCE(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)", target).Scan(&ok)
		})
		if err == nil && !ok {
			err = errors.New("replica behind")
		}
		return err
	})
}

// NewPools opens pgx pools on database db: one on the primary and, with a
// replica, one on the replica (nil otherwise). The caller closes them.
func (c *PostgresCluster) NewPools(ctx context.Context, db string) (primary, replica *pgxpool.Pool, err error) {
	primary, err = pgxpool.New(ctx, c.Primary.URL(db))
	if err != nil {
		return nil, nil, fmt.Errorf("scalekittest: primary pool: %w", err)
	}
	if c.Replica == nil {
		return primary, nil, nil
	}
	replica, err = pgxpool.New(ctx, c.Replica.URL(db))
	if err != nil {
		primary.Close()
		return nil, nil, fmt.Errorf("scalekittest: replica pool: %w", err)
	}
	return primary, replica, nil
}

// Promote promotes the server, a standby, to a primary (pg_ctl promote -w)
// and waits until it accepts writes: pg_is_in_recovery() is false and the
// server is on a new timeline, forked from the old primary's at the last
// WAL record it replayed. The old primary is left as it is: stop it first
// (StopFast, so every commit it acknowledged has been streamed) to fail
// over without losing acknowledged writes, or leave it running to make a
// split brain.
func (s *PGServer) Promote(ctx context.Context) error {
	if !s.Running() {
		return fmt.Errorf("scalekittest: promote %s: the server is not running", s.name)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.acct.runTool(ctx, filepath.Join(s.binDir, "pg_ctl"), "promote", "-w", "-t", strconv.Itoa(int(s.timeout/time.Second)+1), "-D", s.dataDir); err != nil {
		return err
	}
	return waitFor(ctx, nil, "postgres "+s.name+" promoted", func(ctx context.Context) error {
		var rec bool
		err := s.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
			return conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
		})
		if err == nil && rec {
			err = errors.New("still in recovery")
		}
		return err
	})
}

// Timeline is the server's current timeline: on a primary, the timeline of
// its WAL insert position (the first 8 hex digits of its WAL file name); on
// a standby, the timeline it receives from its primary (0 while its WAL
// receiver is not running).
func (s *PGServer) Timeline(ctx context.Context) (uint32, error) {
	var tli int64
	err := s.queryRow(ctx, "postgres", func(conn *pgx.Conn) error {
		return conn.QueryRow(ctx, `SELECT CASE WHEN pg_is_in_recovery()
			THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), 0)::bigint
			ELSE ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::bigint END`).Scan(&tli)
	})
	if err != nil {
		return 0, fmt.Errorf("scalekittest: timeline of %s: %w", s.name, err)
	}
	return uint32(tli), nil
}
