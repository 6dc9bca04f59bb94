package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/console"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// A console mounted at /admin/ behind a token: a request without it gets
// 401, one with it sees the tripped breaker in red.
func Example() {
	con, err := console.New(console.Options{
		Authorize: func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer let-me-in" },
	})
	if err != nil {
		panic(err)
	}
	br, _ := breaker.New(breaker.Options{Name: "payments", ConsecutiveFailures: 1})
	br.Do(context.Background(), func(context.Context) error { return errors.New("connection refused") })
	if err := con.AddBreaker(br); err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", con))

	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/admin/", nil))
	fmt.Println("without the token:", w.Code)

	r := httptest.NewRequest("GET", "/admin/", nil)
	r.Header.Set("Authorization", "Bearer let-me-in")
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	fmt.Println("with the token:", w.Code, strings.Contains(w.Body.String(), `<span class="state red">red</span>`))

	_, err = console.New(console.Options{})
	fmt.Println(err)
	// Output:
	// without the token: 401
	// with the token: 200 true
	// console: invalid: Options.Authorize is required (or set InsecureLoopbackOnly to serve loopback requests without authorization)
}

// Start samples the primitives for the charts until Close; the limiters
// page then draws decisions and denials per second as SVG.
func ExampleConsole_Start() {
	con, err := console.New(console.Options{InsecureLoopbackOnly: true})
	if err != nil {
		panic(err)
	}
	lim, _ := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 10, Period: time.Second}}})
	if err := con.AddLimiter("api", lim); err != nil {
		panic(err)
	}
	if err := con.Start(context.Background()); err != nil {
		panic(err)
	}
	defer con.Close()

	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/limiters", nil)
	r.RemoteAddr = "127.0.0.1:1234"
	con.ServeHTTP(w, r)
	fmt.Println(w.Code, strings.Contains(w.Body.String(), "decisions per second"))
	// Output: 200 true
}
