package dbrouter_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/dbrouter"
)

// The examples that need PostgreSQL compile but do not run (no Output).

func Example() {
	ctx := context.Background()
	primary, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer primary.Close()
	replica, err := pgxpool.New(ctx, os.Getenv("DATABASE_REPLICA_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer replica.Close()

	r, err := dbrouter.New(ctx, dbrouter.Options{
		Primary:     primary,
		Replicas:    []*pgxpool.Pool{replica},
		MaxLagBytes: 8 << 20,
		TokenWait:   50 * time.Millisecond,
		Logger:      slog.Default(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	// A write goes to the primary; its token makes the next read see it.
	if _, err := r.Exec(ctx, "UPDATE users SET name = $1 WHERE id = $2", "Ada", 42); err != nil {
		log.Fatal(err)
	}
	tok, err := r.WriteToken(ctx)
	if err != nil {
		log.Fatal(err)
	}
	var name string
	err = r.QueryRow(dbrouter.WithToken(ctx, tok), "SELECT name FROM users WHERE id = $1", 42).Scan(&name)
	fmt.Println(name, err)

	// A read with no token goes to a healthy replica.
	var n int
	_ = r.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n)
	// A read that must see every commit goes to the primary.
	_ = r.QueryRow(dbrouter.Primary(ctx), "SELECT count(*) FROM users").Scan(&n)
}

func ExampleOpen() {
	ctx := context.Background()
	r, err := dbrouter.Open(ctx, os.Getenv("DATABASE_URL"),
		[]string{os.Getenv("DATABASE_REPLICA_URL")},
		dbrouter.Options{SlowQuery: 200 * time.Millisecond, Logger: slog.Default()})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close() // closes the pools Open made
	for _, rep := range r.Stats().Replicas {
		fmt.Println(rep.Name, rep.Healthy, rep.LagBytes, rep.Queries.Slow)
	}
}

// userName is written against Querier: it takes the router, a pool or a
// transaction.
func userName(ctx context.Context, q dbrouter.Querier, id int) (string, error) {
	var name string
	err := q.QueryRow(ctx, "SELECT name FROM users WHERE id = $1", id).Scan(&name)
	return name, err
}

func ExampleQuerier() {
	ctx := context.Background()
	var r *dbrouter.Router            // from New or Open
	name, err := userName(ctx, r, 42) // a replica
	fmt.Println(name, err)
	err = pgx.BeginFunc(ctx, r, func(tx pgx.Tx) error { // the primary
		name, err = userName(ctx, tx, 42)
		return err
	})
	fmt.Println(name, err)
}

func ExampleHTTP_Middleware() {
	var r *dbrouter.Router // from New or Open
	tokens, err := dbrouter.NewHTTP(dbrouter.HTTPOptions{Router: r})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /users/{id}", func(w http.ResponseWriter, req *http.Request) {
		// The request's session records this write; the response carries
		// the new token in the dbrouter_token cookie and X-DB-Token header.
		_, err := r.Exec(req.Context(), "UPDATE users SET name = $1 WHERE id = $2", req.FormValue("name"), req.PathValue("id"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, req *http.Request) {
		// The same user's next request reads their write, from a replica
		// that has replayed it or from the primary.
		var name string
		if err := r.QueryRow(req.Context(), "SELECT name FROM users WHERE id = $1", req.PathValue("id")).Scan(&name); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		fmt.Fprintln(w, name)
	})
	log.Fatal(http.ListenAndServe(":8080", tokens.Middleware(mux)))
}

func ExampleWithSession() {
	ctx := context.Background()
	var r *dbrouter.Router      // from New or Open
	var previous dbrouter.Token // from the user's last request, or zero
	ctx = dbrouter.WithSession(ctx, previous)
	if _, err := r.Exec(ctx, "INSERT INTO posts (author, body) VALUES ($1, $2)", 42, "hello"); err != nil {
		log.Fatal(err)
	}
	// Reads on ctx see the insert, with no token passed by hand.
	var n int
	_ = r.QueryRow(ctx, "SELECT count(*) FROM posts WHERE author = $1", 42).Scan(&n)
	// Hand the token to the user's next request.
	tok, _ := r.SessionToken(ctx)
	fmt.Println(tok)
}

func ExampleParseToken() {
	tok := dbrouter.Token{LSN: 0x16_B374D848, Time: time.UnixMilli(1767225600123)}
	s := tok.String()
	back, err := dbrouter.ParseToken(s)
	fmt.Println(s)
	fmt.Println(back.LSN, back.Time.UTC().Format(time.RFC3339Nano), err)
	// Output:
	// 16/B374D848@1767225600123
	// 16/B374D848 2026-01-01T00:00:00.123Z <nil>
}

// A token carries the timeline of the write's server; the form without one
// (tokens from before) still parses, timeline unknown.
func ExampleParseToken_timeline() {
	tok, err := dbrouter.ParseToken("16/B374D848@1767225600123@2")
	fmt.Println(tok.LSN, tok.Timeline, err)
	old, err := dbrouter.ParseToken("16/B374D848@1767225600123")
	fmt.Println(old.LSN, old.Timeline, err)
	// Output:
	// 16/B374D848 2 <nil>
	// 16/B374D848 0 <nil>
}

// With Failover, the replica's URL is also a candidate for the primary:
// when it is promoted (pg_ctl promote, a cluster manager) and the primary
// is gone or read-only, writes go to it; Stats names the write server.
func ExampleOptions_failover() {
	ctx := context.Background()
	r, err := dbrouter.Open(ctx, os.Getenv("DATABASE_URL"), []string{os.Getenv("DATABASE_REPLICA_URL")},
		dbrouter.Options{Failover: true, Logger: slog.Default()})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	st := r.Stats()
	fmt.Println(st.Primary.Server, st.Primary.Timeline, st.Failovers, st.LostTokens, st.SplitBrains)
}

// After migrations, Fence keeps reads off replicas that have not replayed
// them, and Ready (in the readiness probe) says when they have. A tracer of
// the user's (otelpgx, say) set in ConfigurePool is kept beside the
// router's own.
func ExampleRouter_Fence() {
	ctx := context.Background()
	r, err := dbrouter.Open(ctx, os.Getenv("DATABASE_URL"), []string{os.Getenv("DATABASE_REPLICA_URL")},
		dbrouter.Options{ConfigurePool: func(name string, cfg *pgxpool.Config) error {
			cfg.MaxConns = 20
			// cfg.ConnConfig.Tracer = otelpgx.NewTracer()
			return nil
		}})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Exec(ctx, "CREATE TABLE IF NOT EXISTS users (id bigint PRIMARY KEY, name text)"); err != nil {
		log.Fatal(err)
	}
	if err := r.Fence(ctx); err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("/health/ready", func(w http.ResponseWriter, req *http.Request) {
		if err := r.Ready(req.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
}
