package shutdown_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/shutdown"
)

// On SIGTERM: readiness fails, load balancers stop sending for 5s, the HTTP
// server finishes its requests, then the database pool closes.
func Example() {
	h, _ := health.New(health.Options{})
	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: http.NewServeMux()}
	go srv.ListenAndServe()

	c, _ := shutdown.New(shutdown.Options{Readiness: h, DrainDelay: 5 * time.Second, Timeout: 25 * time.Second})
	c.Add("http", srv)
	c.Close("db", func(ctx context.Context) error { return nil /* pool.Close() */ })
	if err := c.Wait(context.Background()); err != nil {
		log.Print(err)
	}
}
