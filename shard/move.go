package shard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/logx"
	"github.com/scalekit-go/scalekit/internal/pause"
)

// Table is a sharded table: a move copies the rows of one virtual shard of
// each. Every sharded table stores the virtual shard of its row's key
// (Route.VShard, filled in by the application) in VShardColumn, an int
// NOT NULL column with an index, because the key's hash (xxHash64) cannot
// be computed in SQL; and its replica identity (the primary key, or a
// unique index set with ALTER TABLE ... REPLICA IDENTITY USING INDEX)
// includes VShardColumn, which PostgreSQL's row-filtered publications
// need to replicate updates and deletes:
//
//	CREATE TABLE posts (id bigint, user_id bigint NOT NULL, vshard int NOT NULL,
//	    body text, PRIMARY KEY (id, vshard));
//	CREATE INDEX ON posts (vshard);
type Table struct {
	// Name is the table, a lower-case SQL identifier, optionally
	// schema-qualified. Required.
	Name string
	// VShardColumn holds each row's virtual shard. Default: "vshard".
	VShardColumn string
	// KeyColumns are the columns of the shard key (documentation, and
	// checked to exist). Optional.
	KeyColumns []string
}

// MoverOptions configure a Mover.
type MoverOptions struct {
	// Store is the map store: the move's state lives next to the map, and
	// the flip publishes the next version there. Required.
	Store *MapStore
	// Router gives the clusters: the move runs on each cluster's primary
	// pool (dbrouter.Router.PrimaryPool). Required.
	Router *Router
	// ConnStrings gives, for each cluster that can be moved from, the
	// connection string (key=value or URL) the other clusters' PostgreSQL
	// servers use to reach its primary, for CREATE SUBSCRIPTION. The source
	// must run with wal_level=logical. Required for a move's source.
	ConnStrings map[string]string
	// Tables are the sharded tables, each present on every cluster.
	// Required.
	Tables []Table
	// CopyTimeout bounds the initial copy of a virtual shard's rows.
	// Default: 10 minutes.
	CopyTimeout time.Duration
	// CatchUpTimeout bounds the wait, writes fenced, for the target to
	// apply the source's last changes: past it the Mover lifts the fence
	// (writes go on at the source, the subscription keeps streaming) and
	// Move fails; call it again to fence anew. Default: 5s.
	CatchUpTimeout time.Duration
	// Logger receives each step of a move (Info). Default: discard.
	Logger *slog.Logger
}

// Mover moves virtual shards between clusters while traffic runs. See the
// package doc's "Moving a virtual shard".
type Mover struct {
	o      MoverOptions
	tables []Table
	state  string // the moves' table on the config database
}

// The steps of a move, in order; a move's state row names the last one
// done.
const (
	stepStart      = "start"
	stepPrepared   = "prepared"
	stepSubscribed = "subscribed"
	stepCopied     = "copied"
	stepFenced     = "fenced"
	stepCaughtUp   = "caught_up"
	stepFlipped    = "flipped"
	stepDone       = "done"
)

var moveSteps = []string{stepStart, stepPrepared, stepSubscribed, stepCopied, stepFenced, stepCaughtUp, stepFlipped, stepDone}

// moveHook, when set (tests), is called after each step's work, before
// its state is saved.
var moveHook func(step string)

// MoveResult reports a finished move.
type MoveResult struct {
	// VShard moved From one cluster To another under map Version.
	VShard   int
	From, To string
	Version  int64
	// Resumed is true when Move finished a move a previous call began.
	Resumed bool
	// Fenced is how long writes to the virtual shard were refused by the
	// source before the new map was published: the write pause, plus the
	// time the Routers take to install the map (milliseconds with Watch).
	// Zero when this call did not fence (it resumed after the flip).
	Fenced time.Duration
	// Copy is the time the initial copy took (zero when resumed after it).
	Copy time.Duration
}

// NewMover validates o.
func NewMover(o MoverOptions) (*Mover, error) {
	if o.Store == nil {
		return nil, errors.New("shard: invalid MoverOptions.Store: nil, want the MapStore of the map")
	}
	if o.Router == nil {
		return nil, errors.New("shard: invalid MoverOptions.Router: nil, want the Router of the clusters")
	}
	if len(o.Tables) == 0 {
		return nil, errors.New("shard: invalid MoverOptions.Tables: none, want the sharded tables")
	}
	m := &Mover{o: o, state: o.Store.table + "_move"}
	seen := map[string]bool{}
	for i, t := range o.Tables {
		if t.VShardColumn == "" {
			t.VShardColumn = "vshard"
		}
		if !tableName.MatchString(t.Name) {
			return nil, fmt.Errorf("shard: invalid MoverOptions.Tables[%d].Name %q: want a lower-case SQL identifier, optionally schema-qualified", i, t.Name)
		}
		for _, c := range append([]string{t.VShardColumn}, t.KeyColumns...) {
			if !tableName.MatchString(c) || slices.Contains([]byte(c), '.') {
				return nil, fmt.Errorf("shard: invalid MoverOptions.Tables[%d]: column %q: want a lower-case SQL identifier", i, c)
			}
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("shard: invalid MoverOptions.Tables[%d]: %s given twice", i, t.Name)
		}
		seen[t.Name] = true
		m.tables = append(m.tables, t)
	}
	for name := range o.ConnStrings {
		if _, ok := o.Router.Cluster(name); !ok {
			return nil, fmt.Errorf("shard: invalid MoverOptions.ConnStrings[%q]: no such cluster (have %v)", name, o.Router.Clusters())
		}
	}
	if m.o.CopyTimeout == 0 {
		m.o.CopyTimeout = 10 * time.Minute
	}
	if m.o.CatchUpTimeout == 0 {
		m.o.CatchUpTimeout = 5 * time.Second
	}
	if m.o.Logger == nil {
		m.o.Logger = logx.Discard
	}
	return m, nil
}

// Migrate creates the moves' table on the config database and, on every
// cluster, the fence: the scalekit_shard_fence and scalekit_shard_marker
// tables, the trigger function, and a BEFORE INSERT OR UPDATE OR DELETE
// trigger on each table that refuses writes to fenced virtual shards. It
// is idempotent; Move runs the cluster part for its two clusters too.
// Creating a trigger briefly locks its table against writes: run Migrate
// when deploying, not during a move.
func (m *Mover) Migrate(ctx context.Context) error {
	if _, err := m.o.Store.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+m.state+` (
		vshard int PRIMARY KEY,
		from_cluster text NOT NULL,
		to_cluster text NOT NULL,
		step text NOT NULL,
		token text NOT NULL,
		version bigint NOT NULL DEFAULT 0,
		fenced_at timestamptz,
		updated_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("shard: migrate %s: %w", m.state, err)
	}
	for _, name := range m.o.Router.Clusters() {
		if err := m.install(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mover) pool(cluster string) *pgxpool.Pool {
	c, _ := m.o.Router.Cluster(cluster)
	return c.PrimaryPool()
}

// install sets the fence up on cluster's primary.
func (m *Mover) install(ctx context.Context, cluster string) error {
	p := m.pool(cluster)
	stmts := []string{
		// One row per virtual shard, made once and only updated, so that
		// a REPEATABLE READ writer whose snapshot predates a fence fails to
		// lock the updated row instead of missing the fence.
		`CREATE TABLE IF NOT EXISTS scalekit_shard_fence (vshard int PRIMARY KEY, active bool NOT NULL DEFAULT false, moved_to text NOT NULL DEFAULT '', changed_at timestamptz NOT NULL DEFAULT now())`,
		fmt.Sprintf(`INSERT INTO scalekit_shard_fence (vshard) SELECT generate_series(0, %d) ON CONFLICT (vshard) DO NOTHING`, m.o.Router.VirtualShards()-1),
		`CREATE TABLE IF NOT EXISTS scalekit_shard_marker (vshard int PRIMARY KEY, token text NOT NULL)`,
		fmt.Sprintf(`CREATE OR REPLACE FUNCTION scalekit_shard_fence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	v int;
	dest text;
BEGIN
	IF current_setting('scalekit.fence_bypass', true) = 'on' THEN
		IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
		RETURN NEW;
	END IF;
	FOR i IN 1..2 LOOP
		IF i = 1 AND TG_OP <> 'DELETE' THEN
			v := (to_jsonb(NEW) ->> TG_ARGV[0])::int;
		ELSIF i = 2 AND TG_OP <> 'INSERT' THEN
			v := (to_jsonb(OLD) ->> TG_ARGV[0])::int;
		ELSE
			CONTINUE;
		END IF;
		-- Held until commit: the fence waits for the writes in flight.
		PERFORM pg_advisory_xact_lock_shared(%d, v);
		IF current_setting('transaction_isolation') = 'read committed' THEN
			-- A fresh snapshot, taken after the lock: it sees the fence.
			SELECT moved_to INTO dest FROM scalekit_shard_fence WHERE vshard = v AND active;
		ELSE
			-- The transaction's snapshot may predate the fence: locking a
			-- row updated since fails with a serialization error.
			SELECT CASE WHEN active THEN moved_to END INTO dest FROM scalekit_shard_fence WHERE vshard = v FOR SHARE;
		END IF;
		IF dest IS NOT NULL THEN
			RAISE EXCEPTION 'scalekit: virtual shard %% moved to cluster %%', v, dest
				USING ERRCODE = '%s', DETAIL = v || ' ' || dest;
		END IF;
	END LOOP;
	IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
	RETURN NEW;
END $$`, fenceLockSpace, MovedSQLState),
	}
	for _, s := range stmts {
		if _, err := p.Exec(ctx, s); err != nil {
			return fmt.Errorf("shard: install the fence on cluster %s: %w", cluster, err)
		}
	}
	for _, t := range m.tables {
		if err := m.checkTable(ctx, cluster, t); err != nil {
			return err
		}
		var has bool
		if err := p.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = $1::regclass AND tgname = 'scalekit_shard_fence')`, t.Name).Scan(&has); err != nil {
			return fmt.Errorf("shard: cluster %s: table %s: %w", cluster, t.Name, err)
		}
		if has {
			continue
		}
		if _, err := p.Exec(ctx, `CREATE TRIGGER scalekit_shard_fence BEFORE INSERT OR UPDATE OR DELETE ON `+t.Name+
			` FOR EACH ROW EXECUTE FUNCTION scalekit_shard_fence('`+t.VShardColumn+`')`); err != nil {
			return fmt.Errorf("shard: cluster %s: fence trigger on %s: %w", cluster, t.Name, err)
		}
	}
	return nil
}

// checkTable checks t's columns and replica identity on cluster.
func (m *Mover) checkTable(ctx context.Context, cluster string, t Table) error {
	p := m.pool(cluster)
	for _, c := range append([]string{t.VShardColumn}, t.KeyColumns...) {
		var ok bool
		err := p.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2 AND attnum > 0 AND NOT attisdropped)`, t.Name, c).Scan(&ok)
		if err != nil {
			return fmt.Errorf("shard: cluster %s: table %s: %w", cluster, t.Name, err)
		}
		if !ok {
			return fmt.Errorf("shard: cluster %s: table %s has no column %q (MoverOptions.Tables)", cluster, t.Name, c)
		}
	}
	var ok bool
	err := p.QueryRow(ctx, `
		SELECT c.relreplident = 'f' OR EXISTS (
			SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
			WHERE i.indrelid = c.oid AND a.attname = $2
			  AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident)))
		FROM pg_class c WHERE c.oid = $1::regclass`, t.Name, t.VShardColumn).Scan(&ok)
	if err != nil {
		return fmt.Errorf("shard: cluster %s: table %s: %w", cluster, t.Name, err)
	}
	if !ok {
		return fmt.Errorf("shard: cluster %s: table %s: its replica identity (primary key or REPLICA IDENTITY USING INDEX) does not include %s, which a move's row filter needs", cluster, t.Name, t.VShardColumn)
	}
	return nil
}

// moveState is a move's row on the config database.
type moveState struct {
	vshard   int
	from, to string
	step     string
	token    string
	version  int64
	fencedAt *time.Time
}

// ErrMoveConflict is returned by Move when an unfinished move of the
// virtual shard goes elsewhere, or another Mover is moving it now.
var ErrMoveConflict = errors.New("shard: conflicting move")

// Move moves virtual shard vshard to cluster to, while traffic runs, and
// returns when the source holds none of its rows. It resumes an
// unfinished move of vshard (after a crash of its mover, at any step);
// every step is idempotent. See the package doc for the steps.
func (m *Mover) Move(ctx context.Context, vshard int, to string) (MoveResult, error) {
	r := m.o.Router
	if vshard < 0 || vshard >= r.VirtualShards() {
		return MoveResult{}, fmt.Errorf("shard: Move: vshard %d, want 0..%d", vshard, r.VirtualShards()-1)
	}
	if _, ok := r.Cluster(to); !ok {
		return MoveResult{}, fmt.Errorf("shard: Move: cluster %q, want one of %v", to, r.Clusters())
	}
	// One mover per virtual shard: a session lock, dropped if we die.
	conn, err := m.o.Store.pool.Acquire(ctx)
	if err != nil {
		return MoveResult{}, fmt.Errorf("shard: Move: config database: %w", err)
	}
	defer conn.Release()
	// A mover that just died may hold it for a moment more, until its
	// server process sees the connection closed.
	var got bool
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = waitUntil(lctx, time.Millisecond, 100*time.Millisecond, func() (bool, error) {
		err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, $2)`, moverLockSpace, vshard).Scan(&got)
		return got, err
	})
	cancel()
	if err != nil && ctx.Err() != nil {
		return MoveResult{}, ctx.Err()
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return MoveResult{}, fmt.Errorf("shard: Move: config database: %w", err)
	}
	if !got {
		return MoveResult{}, fmt.Errorf("%w: virtual shard %d is being moved by another Mover", ErrMoveConflict, vshard)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(c, `SELECT pg_advisory_unlock($1, $2)`, moverLockSpace, vshard); err != nil {
			conn.Conn().Close(c)
		}
	}()

	st, res, err := m.begin(ctx, vshard, to)
	if err != nil || st == nil {
		return res, err
	}
	res = MoveResult{VShard: vshard, From: st.from, To: st.to, Resumed: st.step != stepStart}
	log := m.o.Logger.With("vshard", vshard, "from", st.from, "to", st.to)
	for st.step != stepDone {
		i := slices.Index(moveSteps, st.step)
		next := moveSteps[i+1]
		t0 := time.Now()
		if err := m.do(ctx, st, next, &res); err != nil {
			if next == stepCaughtUp && ctx.Err() == nil {
				err = m.unfence(st, err)
			}
			return res, fmt.Errorf("shard: Move vshard %d from %s to %s: step %s: %w", vshard, st.from, st.to, next, err)
		}
		if moveHook != nil {
			moveHook(next)
		}
		if err := m.save(ctx, st, next); err != nil {
			return res, err
		}
		log.Info("shard: move step done", "step", next, "took", time.Since(t0))
	}
	res.Version = st.version
	m.o.Store.moves.Add(1)
	m.o.Store.lastFence.Store(int64(res.Fenced))
	log.Info("shard: virtual shard moved", "version", res.Version, "resumed", res.Resumed, "copy", res.Copy, "fenced", res.Fenced)
	// Resumed after the flip, the Router has not seen the new map yet.
	if err := m.o.Store.Sync(ctx, m.o.Router); err != nil {
		return res, fmt.Errorf("shard: Move vshard %d: moved, but the map could not be read back: %w", vshard, err)
	}
	return res, nil
}

// begin returns the unfinished move of vshard, or starts one; nil (and a
// result) when vshard is already on to.
func (m *Mover) begin(ctx context.Context, vshard int, to string) (*moveState, MoveResult, error) {
	st, err := m.load(ctx, vshard)
	if err != nil {
		return nil, MoveResult{}, err
	}
	if st != nil && st.step != stepDone {
		if st.to != to {
			return nil, MoveResult{}, fmt.Errorf("%w: an unfinished move of virtual shard %d goes to %s, not %s: finish it first (Move(ctx, %d, %q))", ErrMoveConflict, vshard, st.to, to, vshard, st.to)
		}
		return st, MoveResult{}, nil
	}
	cur, err := m.o.Store.Current(ctx)
	if err != nil {
		return nil, MoveResult{}, fmt.Errorf("shard: Move: %w", err)
	}
	if vshard >= len(cur.Assign) {
		return nil, MoveResult{}, fmt.Errorf("shard: Move: vshard %d: the stored map has %d virtual shards", vshard, len(cur.Assign))
	}
	from := cur.Assign[vshard]
	if from == to {
		return nil, MoveResult{VShard: vshard, From: from, To: to, Version: cur.Version}, nil
	}
	if _, ok := m.o.ConnStrings[from]; !ok {
		return nil, MoveResult{}, fmt.Errorf("shard: Move: no MoverOptions.ConnStrings[%q] for the source cluster", from)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	st = &moveState{vshard: vshard, from: from, to: to, step: stepStart, token: hex.EncodeToString(b[:])}
	_, err = m.o.Store.pool.Exec(ctx, `INSERT INTO `+m.state+` (vshard, from_cluster, to_cluster, step, token) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (vshard) DO UPDATE SET from_cluster = $2, to_cluster = $3, step = $4, token = $5, version = 0, fenced_at = NULL, updated_at = now()`,
		vshard, from, to, stepStart, st.token)
	if err != nil {
		return nil, MoveResult{}, fmt.Errorf("shard: Move: save state: %w", err)
	}
	return st, MoveResult{}, nil
}

func (m *Mover) load(ctx context.Context, vshard int) (*moveState, error) {
	st := &moveState{vshard: vshard}
	err := m.o.Store.pool.QueryRow(ctx, `SELECT from_cluster, to_cluster, step, token, version, fenced_at FROM `+m.state+` WHERE vshard = $1`, vshard).
		Scan(&st.from, &st.to, &st.step, &st.token, &st.version, &st.fencedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("shard: Move: read state: %w", err)
	}
	if !slices.Contains(moveSteps, st.step) {
		return nil, fmt.Errorf("shard: Move: state of virtual shard %d has unknown step %q", vshard, st.step)
	}
	return st, nil
}

func (m *Mover) save(ctx context.Context, st *moveState, step string) error {
	_, err := m.o.Store.pool.Exec(ctx, `UPDATE `+m.state+` SET step = $2, version = $3, fenced_at = $4, updated_at = now() WHERE vshard = $1 AND token = $5`,
		st.vshard, step, st.version, st.fencedAt, st.token)
	if err != nil {
		return fmt.Errorf("shard: Move: save step %s: %w", step, err)
	}
	st.step = step
	return nil
}

// MoveState describes the last move of a virtual shard, for operators.
type MoveState struct {
	VShard   int
	From, To string
	// Step is the last step done: "start", "prepared", "subscribed",
	// "copied", "fenced", "caught_up", "flipped" or "done".
	Step string
	// Version is the map version that moved it (0 before the flip).
	Version int64
}

// State returns the last move of vshard; false when it never moved.
func (m *Mover) State(ctx context.Context, vshard int) (MoveState, bool, error) {
	st, err := m.load(ctx, vshard)
	if err != nil || st == nil {
		return MoveState{}, false, err
	}
	return MoveState{VShard: vshard, From: st.from, To: st.to, Step: st.step, Version: st.version}, true, nil
}

func (st *moveState) name() string { return fmt.Sprintf("scalekit_move_%d_%s", st.vshard, st.token) }

// do performs step (idempotently: it may have been done before a crash).
func (m *Mover) do(ctx context.Context, st *moveState, step string, res *MoveResult) error {
	src, dst := m.pool(st.from), m.pool(st.to)
	name := st.name()
	switch step {
	case stepPrepared:
		// The target takes the virtual shard: lift a fence left by a move
		// away from it, and clear rows a failed earlier move left.
		for _, c := range []string{st.from, st.to} {
			if err := m.install(ctx, c); err != nil {
				return err
			}
		}
		return pgx.BeginFunc(ctx, dst, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL scalekit.fence_bypass = 'on'`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE scalekit_shard_fence SET active = false, changed_at = now() WHERE vshard = $1 AND active`, st.vshard); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM scalekit_shard_marker WHERE vshard = $1`, st.vshard); err != nil {
				return err
			}
			for _, t := range m.tables {
				if _, err := tx.Exec(ctx, `DELETE FROM `+t.Name+` WHERE `+t.VShardColumn+` = $1`, st.vshard); err != nil {
					return err
				}
			}
			return nil
		})

	case stepSubscribed:
		var has bool
		if err := src.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, name).Scan(&has); err != nil {
			return err
		}
		if !has {
			sql := `CREATE PUBLICATION ` + name + ` FOR TABLE scalekit_shard_marker WHERE (vshard = ` + fmt.Sprint(st.vshard) + `)`
			for _, t := range m.tables {
				sql += `, ` + t.Name + ` WHERE (` + t.VShardColumn + ` = ` + fmt.Sprint(st.vshard) + `)`
			}
			if _, err := src.Exec(ctx, sql); err != nil {
				return err
			}
		}
		if err := dst.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_subscription WHERE subname = $1)`, name).Scan(&has); err != nil {
			return err
		}
		if has {
			return nil
		}
		// A crash between the slot's creation on the source and the
		// subscription's commit leaves the slot: drop it first.
		if err := dropSlot(ctx, src, name); err != nil {
			return err
		}
		_, err := dst.Exec(ctx, `CREATE SUBSCRIPTION `+name+` CONNECTION `+quote(m.o.ConnStrings[st.from])+` PUBLICATION `+name+` WITH (copy_data = true)`)
		return err

	case stepCopied:
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(ctx, m.o.CopyTimeout)
		defer cancel()
		want := len(m.tables) + 1
		err := waitUntil(ctx, time.Millisecond, 100*time.Millisecond, func() (bool, error) {
			var ready, n int
			err := dst.QueryRow(ctx, `SELECT count(*) FILTER (WHERE r.srsubstate = 'r'), count(*)
				FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = $1`, name).Scan(&ready, &n)
			return ready == want && n == want, err
		})
		res.Copy = time.Since(t0)
		return err

	case stepFenced:
		// The exclusive lock waits for the writes in flight (each holds
		// the shared lock until it commits); the marker commits with the
		// fence, after every write the source accepted.
		// Each fence has a marker of its own: one left by an earlier
		// fence (lifted after a catch-up timeout) must not count.
		now := time.Now().Truncate(time.Microsecond) // timestamptz keeps µs
		err := pgx.BeginFunc(ctx, src, func(tx pgx.Tx) error {
			// Flushed at commit, with the writes before it: the walsender
			// sends only flushed WAL.
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, fenceLockSpace, st.vshard); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO scalekit_shard_fence (vshard, active, moved_to) VALUES ($1, true, $2)
				ON CONFLICT (vshard) DO UPDATE SET active = true, moved_to = $2, changed_at = now()`, st.vshard, st.to); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO scalekit_shard_marker (vshard, token) VALUES ($1, $2) ON CONFLICT (vshard) DO UPDATE SET token = $2`, st.vshard, marker(st.token, now))
			return err
		})
		if err == nil {
			st.fencedAt = &now
		}
		return err

	case stepCaughtUp:
		ctx, cancel := context.WithTimeout(ctx, m.o.CatchUpTimeout)
		defer cancel()
		return waitUntil(ctx, 500*time.Microsecond, 20*time.Millisecond, func() (bool, error) {
			var tok string
			err := dst.QueryRow(ctx, `SELECT token FROM scalekit_shard_marker WHERE vshard = $1`, st.vshard).Scan(&tok)
			if errors.Is(err, pgx.ErrNoRows) {
				return false, nil
			}
			return st.fencedAt != nil && tok == marker(st.token, *st.fencedAt), err
		})

	case stepFlipped:
		for {
			cur, err := m.o.Store.Current(ctx)
			if err != nil {
				return err
			}
			switch cur.Assign[st.vshard] {
			case st.to:
				if st.version == 0 {
					st.version = cur.Version // published before a crash
				}
				m.flipped(st, cur, res)
				return nil
			case st.from:
			default:
				return fmt.Errorf("%w: the stored map (version %d) puts virtual shard %d on %s, neither source nor target", ErrMoveConflict, cur.Version, st.vshard, cur.Assign[st.vshard])
			}
			next := cur.Clone()
			next.Version++
			next.Assign[st.vshard] = st.to
			// The read floor: B's WAL insert position now, after the
			// marker arrived, covers every row the move applied on B.
			floor, err := m.o.Router.clusters[st.to].WriteToken(ctx)
			if err != nil {
				return fmt.Errorf("reading the read floor on %s: %w", st.to, err)
			}
			next.Floors = m.liveFloors(next)
			if next.Floors == nil {
				next.Floors = make(map[int]dbrouter.Token, 1)
			}
			next.Floors[st.vshard] = floor
			err = m.o.Store.Publish(ctx, next)
			if errors.Is(err, ErrVersionConflict) {
				continue // another map was published: build on it
			}
			if err != nil {
				return err
			}
			st.version = next.Version
			m.flipped(st, next, res)
			return nil
		}

	case stepDone:
		if _, err := dst.Exec(ctx, `DROP SUBSCRIPTION IF EXISTS `+name); err != nil {
			return err
		}
		if _, err := src.Exec(ctx, `DROP PUBLICATION IF EXISTS `+name); err != nil {
			return err
		}
		if err := dropSlot(ctx, src, name); err != nil {
			return err
		}
		// The fence stays on the source: a Router with an old map is
		// refused there, not written to.
		for _, p := range []*pgxpool.Pool{src, dst} {
			if _, err := p.Exec(ctx, `DELETE FROM scalekit_shard_marker WHERE vshard = $1`, st.vshard); err != nil {
				return err
			}
		}
		return pgx.BeginFunc(ctx, src, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL scalekit.fence_bypass = 'on'`); err != nil {
				return err
			}
			for _, t := range m.tables {
				if _, err := tx.Exec(ctx, `DELETE FROM `+t.Name+` WHERE `+t.VShardColumn+` = $1`, st.vshard); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return fmt.Errorf("unknown step %q", step)
}

// marker is the marker row's value of the fence installed at fenced.
func marker(token string, fenced time.Time) string {
	return fmt.Sprintf("%s-%d", token, fenced.UnixMicro())
}

// unfence lifts the fence of a move whose catch-up timed out and takes
// its state back to copied, so that Move fences anew; cause is the
// timeout.
func (m *Mover) unfence(st *moveState, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.pool(st.from).Exec(ctx, `UPDATE scalekit_shard_fence SET active = false, changed_at = now() WHERE vshard = $1`, st.vshard); err != nil {
		return fmt.Errorf("%w; lifting the fence on %s failed (%v): writes to the virtual shard are refused until Move resumes", cause, st.from, err)
	}
	st.fencedAt = nil
	if err := m.save(ctx, st, stepCopied); err != nil {
		return fmt.Errorf("%w; the fence was lifted but %v", cause, err)
	}
	return fmt.Errorf("%w; the fence was lifted, writes go on at %s: call Move again", cause, st.from)
}

// flipped installs the new map in the Mover's Router and measures the
// fence.
func (m *Mover) flipped(st *moveState, next Map, res *MoveResult) {
	if err := m.o.Router.SetMap(next); err != nil && !errors.Is(err, ErrStaleMap) {
		m.o.Logger.Warn("shard: Move: the new map was refused by the Mover's Router", "err", err)
	}
	if st.fencedAt != nil && res.Fenced == 0 {
		res.Fenced = time.Since(*st.fencedAt)
	}
}

// liveFloors returns next's floors without those every replica of their
// cluster has replayed (by its monitor's last readings): they hold
// nothing back any more, and the map would grow with every move.
func (m *Mover) liveFloors(next Map) map[int]dbrouter.Token {
	var out map[int]dbrouter.Token
	for v, tok := range next.Floors {
		if c, ok := m.o.Router.clusters[next.Assign[v]]; ok && replayedEverywhere(c, tok) {
			continue
		}
		if out == nil {
			out = make(map[int]dbrouter.Token, len(next.Floors))
		}
		out[v] = tok
	}
	return out
}

func dropSlot(ctx context.Context, p *pgxpool.Pool, name string) error {
	_, err := p.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active`, name)
	return err
}

func quote(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}

// waitUntil calls cond with a pause growing from min to max until it holds
// or fails, or ctx ends.
func waitUntil(ctx context.Context, min, max time.Duration, cond func() (bool, error)) error {
	wait := pause.Growing{Min: min, Max: max}
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if !wait.Wait(ctx.Done()) {
			return ctx.Err()
		}
	}
}
