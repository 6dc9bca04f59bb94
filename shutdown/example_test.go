package shutdown_test

import (
	"context"
	"fmt"
	"log"
	"net"
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
	c.RegisterServer("http", srv)
	c.RegisterCloseFunc("db", func(ctx context.Context) error { return nil /* pool.Close() */ })
	if err := c.Wait(context.Background()); err != nil {
		log.Print(err)
	}
}

// Trigger starts the same sequence a SIGTERM would: readiness fails first,
// then the server stops taking connections, then resources close in
// reverse order of registration.
func ExampleCoordinator_Trigger() {
	h, _ := health.New(health.Options{})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := &http.Server{Handler: http.NewServeMux()}
	go srv.Serve(ln)

	c, _ := shutdown.New(shutdown.Options{Readiness: h, DrainDelay: 10 * time.Millisecond, Timeout: 5 * time.Second})
	c.RegisterServer("http", srv)
	c.RegisterCloseFunc("db", func(context.Context) error { fmt.Println("db closed"); return nil })
	c.RegisterCloseFunc("cache", func(context.Context) error { fmt.Println("cache closed"); return nil })

	c.Trigger()
	err := c.Wait(context.Background())
	_, dialErr := net.Dial("tcp", ln.Addr().String())
	fmt.Println("shut down:", err, "- server refuses connections:", dialErr != nil)
	// Output:
	// cache closed
	// db closed
	// shut down: <nil> - server refuses connections: true
}
