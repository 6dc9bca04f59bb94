package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/pause"
	"github.com/scalekit-go/scalekit/shard/shardstats"
)

// DefaultMapTable is the table of a MapStore when StoreOptions.Table is
// empty; its NOTIFY channel has the same name.
const DefaultMapTable = "scalekit_shard_map"

// DefaultPollInterval is how often a watching MapStore re-reads the current
// map when no notification arrives (StoreOptions.PollInterval).
const DefaultPollInterval = 5 * time.Second

// ErrNoMap is returned by MapStore.Current and Sync when no map has been
// published yet.
var ErrNoMap = errors.New("shard: no map published")

// ErrVersionConflict is returned by MapStore.Publish for a map whose version
// is not the current version + 1; the error is a *VersionConflictError.
var ErrVersionConflict = errors.New("shard: map version conflict")

// VersionConflictError is Publish's refusal: another publisher got there
// first, or the map was built from an old version. It Is ErrVersionConflict.
type VersionConflictError struct {
	// Current is the stored version (0 when none); Offered the refused one.
	Current, Offered int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("shard: publish map version %d refused: version %d is current (want version %d)", e.Offered, e.Current, e.Current+1)
}

// Is reports whether target is ErrVersionConflict.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

// StoreOptions configure a MapStore.
type StoreOptions struct {
	// Table is the map's table on the config database, also the name of
	// the NOTIFY channel. A lower-case SQL identifier, optionally
	// schema-qualified ("config.shard_map"). Default: DefaultMapTable.
	Table string
	// PollInterval is how often Watch re-reads the current map when no
	// notification came (the fallback that catches a missed NOTIFY), and
	// the longest pause between reconnects. Default: DefaultPollInterval
	// (5s). At least 10ms.
	PollInterval time.Duration
	// Logger receives reconnects (Warn) and maps a Router refused (Error).
	// Default: discard.
	Logger *slog.Logger
}

// MapStore keeps the shard map in a table of a PostgreSQL config database,
// every version a row, and announces each new version with NOTIFY so the
// Routers that Watch it converge within a second. It is safe for
// concurrent use.
type MapStore struct {
	pool    *pgxpool.Pool
	table   string // sanitized
	channel string // NOTIFY channel (the table's name as given)
	poll    time.Duration
	log     *slog.Logger

	notified, polls, reconnects atomic.Int64
	retried, moves, lastFence   atomic.Int64
}

var tableName = regexp.MustCompile(`^([a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*$`)

// OpenPGMap returns a MapStore on the config database behind pool. It does
// not create the table: call Migrate once (it is idempotent). The MapStore
// does not close pool.
func OpenPGMap(ctx context.Context, pool *pgxpool.Pool, o StoreOptions) (*MapStore, error) {
	if pool == nil {
		return nil, errors.New("shard: OpenPGMap: nil pool")
	}
	if o.Table == "" {
		o.Table = DefaultMapTable
	}
	if !tableName.MatchString(o.Table) || len(o.Table) > 63 {
		return nil, fmt.Errorf("shard: invalid StoreOptions.Table %q: want a lower-case SQL identifier of at most 63 bytes, optionally schema-qualified", o.Table)
	}
	if o.PollInterval == 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.PollInterval < 10*time.Millisecond {
		return nil, fmt.Errorf("shard: invalid StoreOptions.PollInterval %v: want at least 10ms (0 for %v)", o.PollInterval, DefaultPollInterval)
	}
	if o.Logger == nil {
		o.Logger = logx.Discard
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &MapStore{pool: pool, table: o.Table, channel: o.Table, poll: o.PollInterval, log: o.Logger}, nil
}

// Migrate creates the map's table if it does not exist.
func (s *MapStore) Migrate(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
		version bigint PRIMARY KEY CHECK (version >= 1),
		map jsonb NOT NULL,
		published_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return fmt.Errorf("shard: migrate %s: %w", s.table, err)
	}
	return nil
}

// Publish stores m as the new current map and notifies the watchers, in
// one transaction. It is a compare-and-set: m.Version must be the current
// version + 1 (1 for the first map), else it returns a
// *VersionConflictError and stores nothing; of concurrent publishers of
// the same version exactly one wins. m must assign every virtual shard
// (no empty name), with as many virtual shards as the current map.
func (s *MapStore) Publish(ctx context.Context, m Map) error {
	if m.Version < 1 {
		return fmt.Errorf("shard: Publish: invalid map.Version %d, want at least 1", m.Version)
	}
	if len(m.Assign) == 0 {
		return errors.New("shard: Publish: invalid map.Assign: empty, want one cluster per virtual shard")
	}
	for v, name := range m.Assign {
		if name == "" {
			return fmt.Errorf("shard: Publish: invalid map.Assign[%d]: virtual shard %d is not assigned, want a cluster name", v, v)
		}
	}
	if err := checkFloors(m.Floors, len(m.Assign), "map"); err != nil {
		return fmt.Errorf("shard: Publish: invalid %w", err)
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("shard: Publish: %w", err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var cur int64
		var n int
		err := tx.QueryRow(ctx, `SELECT version, jsonb_extract_path_text(map, 'virtual_shards')::int FROM `+s.table+` ORDER BY version DESC LIMIT 1`).Scan(&cur, &n)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if m.Version != cur+1 {
			return &VersionConflictError{Current: cur, Offered: m.Version}
		}
		if cur > 0 && n != len(m.Assign) {
			return fmt.Errorf("shard: Publish: invalid map.Assign: %d virtual shards, the current map (version %d) has %d: the number of virtual shards never changes", len(m.Assign), cur, n)
		}
		// The primary key decides between concurrent publishers of the
		// same version: the second insert waits for the first and fails.
		if _, err := tx.Exec(ctx, `INSERT INTO `+s.table+` (version, map) VALUES ($1, $2)`, m.Version, data); err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23505" {
				return &VersionConflictError{Current: m.Version, Offered: m.Version}
			}
			return err
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, strconv.FormatInt(m.Version, 10))
		return err
	})
	if err != nil {
		var vc *VersionConflictError
		if errors.As(err, &vc) {
			return err
		}
		return fmt.Errorf("shard: Publish version %d: %w", m.Version, err)
	}
	return nil
}

// Current returns the newest map; ErrNoMap when none was published.
func (s *MapStore) Current(ctx context.Context) (Map, error) {
	return s.get(ctx, `SELECT map FROM `+s.table+` ORDER BY version DESC LIMIT 1`)
}

// Version returns the map of the given version, as published;
// ErrNoMap when there is no such version.
func (s *MapStore) Version(ctx context.Context, version int64) (Map, error) {
	return s.get(ctx, `SELECT map FROM `+s.table+` WHERE version = $1`, version)
}

func (s *MapStore) get(ctx context.Context, sql string, args ...any) (Map, error) {
	var data []byte
	if err := s.pool.QueryRow(ctx, sql, args...).Scan(&data); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return Map{}, ErrNoMap
		}
		return Map{}, fmt.Errorf("shard: read map from %s: %w", s.table, err)
	}
	m, err := ParseMap(data)
	if err != nil {
		return Map{}, fmt.Errorf("%w (table %s)", err, s.table)
	}
	return m, nil
}

// Sync installs the current map in r unless r already has it (or a newer
// one): it returns nil then, and ErrNoMap when none was published. An
// error from r.SetMap (a map naming a cluster r does not know) is
// returned.
func (s *MapStore) Sync(ctx context.Context, r *Router) error {
	m, err := s.Current(ctx)
	if err != nil {
		return err
	}
	if err := r.SetMap(m); err != nil && !errors.Is(err, ErrStaleMap) {
		return err
	}
	return nil
}

// Watch keeps r on the current map until ctx is done, then returns
// ctx.Err(): it holds a connection in LISTEN on the table's channel and
// syncs r at each notification, re-reads the map every PollInterval
// without one (in case a notification was lost), and after losing the
// connection (the config database restarted) reconnects with a growing
// pause of up to PollInterval and syncs r again at once, since
// notifications sent meanwhile were missed. Run it in a goroutine per
// Router (or per process, with several Routers).
func (s *MapStore) Watch(ctx context.Context, rs ...*Router) error {
	wait := pause.Growing{Min: 50 * time.Millisecond, Max: s.poll}
	for {
		err := s.watchOnce(ctx, rs, &wait)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.reconnects.Add(1)
		s.log.Warn("shard: map LISTEN connection lost; reconnecting", slog.String("table", s.table), slog.Any("error", err))
		if !wait.Wait(ctx.Done()) {
			return ctx.Err()
		}
	}
}

func (s *MapStore) watchOnce(ctx context.Context, rs []*Router, wait *pause.Growing) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer func() {
		// The connection goes back to the pool: stop listening on it, or
		// close it when that fails.
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := conn.Exec(c, `UNLISTEN *`); err != nil {
			conn.Conn().Close(c)
		}
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	// Listening now: a version published from here on is notified; read
	// the current one, which may have been published while disconnected.
	sync := func() error {
		m, err := s.get(ctx, `SELECT map FROM `+s.table+` ORDER BY version DESC LIMIT 1`)
		if errors.Is(err, ErrNoMap) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, r := range rs {
			if err := r.SetMap(m); err != nil && !errors.Is(err, ErrStaleMap) {
				s.log.Error("shard: stored map refused by a Router", slog.String("table", s.table), slog.Int64("version", m.Version), slog.Any("error", err))
			}
		}
		return nil
	}
	if err := sync(); err != nil {
		return err
	}
	wait.Reset()
	for {
		wctx, cancel := context.WithTimeout(ctx, s.poll)
		_, err := conn.Conn().WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			s.notified.Add(1)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.Conn().IsClosed():
			s.polls.Add(1)
		default:
			return err
		}
		if err := sync(); err != nil {
			return err
		}
	}
}

// StoreStats is a snapshot of a MapStore's counters. It lives in package
// shardstats, which collectors import without compiling dbrouter or pgx.
type StoreStats = shardstats.StoreStats

// Stats returns the MapStore's counters.
func (s *MapStore) Stats() StoreStats {
	return StoreStats{
		Notifications: s.notified.Load(), Polls: s.polls.Load(), Reconnects: s.reconnects.Load(),
		Retried: s.retried.Load(), Moves: s.moves.Load(), LastFence: time.Duration(s.lastFence.Load()),
	}
}
