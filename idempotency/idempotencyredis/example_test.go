package idempotencyredis_test

import (
	"log"
	"net/http"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/idempotency/idempotencyredis"
)

// Idempotency-Key across a fleet: every instance shares the records in
// Redis, so a retry that lands on another instance is replayed (one round
// trip) instead of running the handler again.
func Example() {
	client := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR"), ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := idempotencyredis.New(idempotencyredis.Options{Client: client})
	if err != nil {
		log.Fatal(err)
	}
	mw, err := idempotency.NewHTTP(idempotency.HTTPOptions{
		Store: store,
		Scope: func(r *http.Request) string { return r.Header.Get("X-Api-Client") }, // who is asking
	})
	if err != nil {
		log.Fatal(err)
	}
	orders := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"order":"created"}`))
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", mw.Middleware(orders)))
}
