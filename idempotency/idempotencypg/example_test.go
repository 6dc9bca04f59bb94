package idempotencypg_test

import (
	"context"
	"log"
	"net/http"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencypg"
)

// Exactly-once payments: the payment row and the idempotency record commit
// in one transaction (InTx), so a crash either keeps both or neither, and a
// retry with the same Idempotency-Key replays the stored response.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	store, err := idempotencypg.New(idempotencypg.Options{Pool: pool})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	if err := store.Migrate(ctx); err != nil { // once, at deploy time
		log.Fatal(err)
	}
	mw, err := idempotency.NewHTTP(idempotency.HTTPOptions{
		Store: store,
		Scope: func(r *http.Request) string { return r.Header.Get("X-Api-Client") }, // who is asking
	})
	if err != nil {
		log.Fatal(err)
	}
	pay := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := store.InTx(r.Context(), func(ctx context.Context, tx pgx.Tx) (idempotency.Response, error) {
			if _, err := tx.Exec(ctx, "INSERT INTO payments (amount_cents) VALUES (500)"); err != nil {
				return idempotency.Response{}, err
			}
			return idempotency.Response{Status: http.StatusCreated, Body: []byte(`{"status":"paid"}`)}, nil
		})
		if err != nil {
			http.Error(w, "payment failed, retry with the same key", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(resp.Status)
		w.Write(resp.Body)
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mw.Middleware(pay)))
}
