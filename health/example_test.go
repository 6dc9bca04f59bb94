package health_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/scalekit-go/scalekit/health"
)

func Example() {
	h, _ := health.New(health.Options{ServiceID: "users-api"})
	h.Add(health.Check{Name: "postgres", Func: func(ctx context.Context) error { return nil }})
	h.Add(health.Check{Name: "search", Optional: true, Func: func(ctx context.Context) error {
		return errors.New("search cluster unreachable")
	}})
	// mux.Handle("/health/ready", h.Ready()); mux.Handle("/health/live", h.Live()) ...

	w := httptest.NewRecorder()
	h.Ready().ServeHTTP(w, httptest.NewRequest("GET", "/health/ready", nil))
	fmt.Println(w.Code, w.Header().Get("Content-Type"))
	fmt.Println(h.Run(context.Background(), health.Readiness).Status)

	h.SetDraining(true) // shutdown begins: load balancers must stop sending
	w = httptest.NewRecorder()
	h.Ready().ServeHTTP(w, httptest.NewRequest("GET", "/health/ready", nil))
	fmt.Println(w.Code)
	// Output:
	// 200 application/health+json
	// warn
	// 503
}
