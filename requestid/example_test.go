package requestid_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/scalekit-go/scalekit/requestid"
)

func Example() {
	ids, err := requestid.NewHTTP(requestid.HTTPOptions{})
	if err != nil {
		panic(err)
	}
	// Every record logged with a request's context carries its ID.
	logger := slog.New(requestid.NewLogHandler(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{} // stable output
			}
			return a
		},
	})))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pay", func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "paid")
	})
	h := ids.Middleware(mux)

	r := httptest.NewRequest("GET", "/pay", nil)
	r.Header.Set("X-Request-ID", "req-42")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)

	r = httptest.NewRequest("GET", "/pay", nil)
	r.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h.ServeHTTP(httptest.NewRecorder(), r)

	fmt.Println("X-Request-ID:", w.Header().Get("X-Request-ID"))
	// Output:
	// level=INFO msg=paid request_id=req-42
	// level=INFO msg=paid request_id=4bf92f3577b34da6a3ce929d0e0e4736 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7
	// X-Request-ID: req-42
}
