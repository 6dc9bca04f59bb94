package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/dbrouter"
)

// User is a user as the API shows it.
type User struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	Version int64  `json:"version"`
}

// userCopy is a user as the cache holds it: with the WAL position (LSN) it
// is known to be at least as fresh as. A request carrying a read-your-writes
// token newer than a copy's LSN does not take the copy (getUser): the token
// bounds the cache as it bounds replicas. 0 in memory mode (no tokens).
type userCopy struct {
	User User   `json:"user"`
	LSN  uint64 `json:"lsn"`
}

// Author is the part of a user a post shows.
type Author struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// Post is a post with its author.
type Post struct {
	ID       int64  `json:"id"`
	Title    string `json:"title"`
	AuthorID int64  `json:"-"`
	Author   Author `json:"author"`
}

// Payment is a captured payment.
type Payment struct {
	ID          string `json:"id"`
	UserID      int64  `json:"user_id"`
	AmountCents int64  `json:"amount_cents"`
	Status      string `json:"status"`
}

// Email is an email job's arguments.
type Email struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
}

// EmailSent is an email job's output: the id the mail server gave it.
type EmailSent struct {
	MessageID string `json:"message_id"`
}

// repo is the data the API serves: PostgreSQL through the router, or
// memory when there is no database.
type repo interface {
	user(ctx context.Context, id int64) (userCopy, error) // cache.ErrNotFound when missing
	updateUser(ctx context.Context, id int64, name, email string, up userUpdate) (userCopy, error)
	posts(ctx context.Context, limit int) ([]Post, error)
	authors(ctx context.Context, ids []int64) (map[int64]Author, error)
	insertPayment(ctx context.Context, p Payment) error
	// refreshPaymentTotals recomputes the per-user payment totals (a
	// periodic job).
	refreshPaymentTotals(ctx context.Context) error
}

const seedUsers, seedPosts = 1000, 5000

// The tables: users and their posts (on the user's cluster when sharded),
// and payments (on the first cluster).
const (
	sqlUsersAndPosts = `
CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, version bigint NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS posts (id bigint PRIMARY KEY, author_id bigint NOT NULL REFERENCES users, title text NOT NULL);`
	sqlPayments = `
CREATE TABLE IF NOT EXISTS payments (id text PRIMARY KEY, user_id bigint NOT NULL, amount_cents bigint NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());`
)

// migrate creates the schema and the seed data (idempotent).
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := pool.Exec(ctx, sqlUsersAndPosts+sqlPayments+`
INSERT INTO users (id, name, email) SELECT i, 'User ' || i, 'user' || i || '@example.com' FROM generate_series(1, 1000) i ON CONFLICT DO NOTHING;
INSERT INTO posts (id, author_id, title) SELECT i, 1 + (i * 7919) % 1000, 'Post ' || i FROM generate_series(1, 5000) i ON CONFLICT DO NOTHING;
CREATE MATERIALIZED VIEW IF NOT EXISTS user_payment_totals AS
  SELECT u.id AS user_id, count(p.id) AS payments, coalesce(sum(p.amount_cents), 0)::bigint AS amount_cents
  FROM users u LEFT JOIN payments p ON p.user_id = u.id GROUP BY u.id;
-- REFRESH ... CONCURRENTLY needs a unique index on the view.
CREATE UNIQUE INDEX IF NOT EXISTS user_payment_totals_user_id ON user_payment_totals (user_id);`)
	if err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	return nil
}

// userUpdate is what updateUser runs with the write: check sees the row
// as it is (locked) and may refuse the write (a failed If-Match); inTx
// runs in the write's transaction (tx is nil in memory), to enqueue the
// write's purge there.
type userUpdate struct {
	check func(old User) error
	inTx  func(ctx context.Context, tx pgx.Tx) error
}

type pgRepo struct{ db *dbrouter.Router }

// sqlCopyLSN is the WAL position a read that follows it on the same server
// sees at least: what a replica has replayed, or what the primary has
// written. Read in a statement of its own before the row's: a statement's
// snapshot is taken at its start, so an LSN read in the same statement
// could be later than the data.
const sqlCopyLSN = `SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text`

func (p *pgRepo) user(ctx context.Context, id int64) (userCopy, error) {
	var c userCopy
	u := &c.User
	// Both statements on one server (a replica chosen as for any read, or
	// the primary) in one round trip: a read batch runs them in order,
	// each with its own snapshot, so the LSN is read before the row.
	var lsn string
	b := &pgx.Batch{}
	b.Queue(sqlCopyLSN).QueryRow(func(row pgx.Row) error { return row.Scan(&lsn) })
	b.Queue(`SELECT id, name, email, version FROM users WHERE id = $1`, id).QueryRow(func(row pgx.Row) error {
		return row.Scan(&u.ID, &u.Name, &u.Email, &u.Version)
	})
	err := p.db.ReadBatch(ctx, b)
	if err == nil {
		var l dbrouter.LSN
		l, err = dbrouter.ParseLSN(lsn)
		c.LSN = uint64(l)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return c, cache.ErrNotFound
	}
	return c, err
}

func (p *pgRepo) updateUser(ctx context.Context, id int64, name, email string, up userUpdate) (userCopy, error) {
	var c userCopy
	u := &c.User
	// A transaction through the router: the primary, and the request's
	// session (the router's middleware) learns of the write, so the
	// response carries a read-your-writes token. The copy's LSN is the
	// insert position read while the row is locked: every earlier write of
	// the row is below it, every later one (it waits for the lock) above.
	err := pgx.BeginFunc(ctx, p.db, func(tx pgx.Tx) error {
		if up.check != nil {
			var old User
			if err := tx.QueryRow(ctx, `SELECT id, name, email, version FROM users WHERE id = $1 FOR UPDATE`, id).Scan(&old.ID, &old.Name, &old.Email, &old.Version); err != nil {
				return err
			}
			if err := up.check(old); err != nil {
				return err
			}
		}
		var lsn string
		err := tx.QueryRow(ctx, `UPDATE users SET name = $2, email = $3, version = version + 1 WHERE id = $1 RETURNING id, name, email, version, pg_current_wal_insert_lsn()::text`,
			id, name, email).Scan(&u.ID, &u.Name, &u.Email, &u.Version, &lsn)
		if err != nil {
			return err
		}
		l, err := dbrouter.ParseLSN(lsn)
		c.LSN = uint64(l)
		if err == nil && up.inTx != nil {
			err = up.inTx(ctx, tx)
		}
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return c, cache.ErrNotFound
	}
	return c, err
}

func (p *pgRepo) posts(ctx context.Context, limit int) ([]Post, error) {
	rows, err := p.db.Query(ctx, `SELECT id, author_id, title FROM posts ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Post, error) {
		var x Post
		err := r.Scan(&x.ID, &x.AuthorID, &x.Title)
		return x, err
	})
}

func (p *pgRepo) authors(ctx context.Context, ids []int64) (map[int64]Author, error) {
	rows, err := p.db.Query(ctx, `SELECT id, name FROM users WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]Author, len(ids))
	_, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct{}, error) {
		var a Author
		err := r.Scan(&a.ID, &a.Name)
		out[a.ID] = a
		return struct{}{}, err
	})
	return out, err
}

func (p *pgRepo) insertPayment(ctx context.Context, x Payment) error {
	_, err := p.db.Exec(ctx, `INSERT INTO payments (id, user_id, amount_cents, status) VALUES ($1, $2, $3, $4)`, x.ID, x.UserID, x.AmountCents, x.Status)
	return err
}

// refreshPaymentTotals refreshes the view without blocking its readers
// (CONCURRENTLY: the new rows are computed aside and merged, by the
// view's unique index), on the primary.
func (p *pgRepo) refreshPaymentTotals(ctx context.Context) error {
	_, err := p.db.Exec(ctx, `REFRESH MATERIALIZED VIEW CONCURRENTLY user_payment_totals`)
	return err
}

// memRepo is the data in memory, for machines without PostgreSQL.
type memRepo struct {
	mu       sync.RWMutex
	users    map[int64]User
	postList []Post
	payments map[string]Payment
}

func newMemRepo() *memRepo {
	m := &memRepo{users: map[int64]User{}, payments: map[string]Payment{}}
	for i := int64(1); i <= seedUsers; i++ {
		m.users[i] = User{ID: i, Name: fmt.Sprintf("User %d", i), Email: fmt.Sprintf("user%d@example.com", i), Version: 1}
	}
	for i := int64(1); i <= seedPosts; i++ {
		m.postList = append(m.postList, Post{ID: i, AuthorID: 1 + (i*7919)%seedUsers, Title: fmt.Sprintf("Post %d", i)})
	}
	sort.Slice(m.postList, func(i, j int) bool { return m.postList[i].ID > m.postList[j].ID })
	return m
}

func (m *memRepo) user(_ context.Context, id int64) (userCopy, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u, ok := m.users[id]
	if !ok {
		return userCopy{}, cache.ErrNotFound
	}
	return userCopy{User: u}, nil
}

func (m *memRepo) updateUser(ctx context.Context, id int64, name, email string, up userUpdate) (userCopy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return userCopy{}, cache.ErrNotFound
	}
	if up.check != nil {
		if err := up.check(u); err != nil {
			return userCopy{}, err
		}
	}
	u.Name, u.Email, u.Version = name, email, u.Version+1
	m.users[id] = u
	if up.inTx != nil {
		if err := up.inTx(ctx, nil); err != nil { // no transaction in memory
			return userCopy{}, err
		}
	}
	return userCopy{User: u}, nil
}

func (m *memRepo) posts(_ context.Context, limit int) ([]Post, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]Post(nil), m.postList[:min(limit, len(m.postList))]...), nil
}

func (m *memRepo) authors(_ context.Context, ids []int64) (map[int64]Author, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := map[int64]Author{}
	for _, id := range ids {
		if u, ok := m.users[id]; ok {
			out[id] = Author{ID: u.ID, Name: u.Name}
		}
	}
	return out, nil
}

func (m *memRepo) insertPayment(_ context.Context, p Payment) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.payments[p.ID] = p
	return nil
}

// refreshPaymentTotals has nothing to refresh: memory has no views.
func (m *memRepo) refreshPaymentTotals(context.Context) error { return nil }
