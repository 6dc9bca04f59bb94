package idempotency_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/scalekit-go/scalekit/idempotency"
)

func ExampleHTTP_Middleware() {
	mw, err := idempotency.NewHTTP(idempotency.HTTPOptions{
		Required: true,
		Scope:    func(r *http.Request) string { return r.Header.Get("X-User") }, // the caller
	})
	if err != nil {
		panic(err)
	}
	charges := 0
	h := mw.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		charges++ // charge the card
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"charge":%d}`, charges)
	}))
	send := func(key, body string) {
		r := httptest.NewRequest("POST", "/charges", strings.NewReader(body))
		r.Header.Set("X-User", "alice")
		if key != "" {
			r.Header.Set("Idempotency-Key", key)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		fmt.Println(w.Code, w.Header().Get("Idempotent-Replayed"), strings.TrimSpace(w.Body.String()))
	}
	send("7c4d1b5e", `{"amount":100}`)   // runs
	send("7c4d1b5e", `{"amount":100}`)   // the client retried: replayed
	send(`"7c4d1b5e"`, `{"amount":100}`) // the draft's quoted form: the same key
	send("7c4d1b5e", `{"amount":999}`)   // same key, other request
	send("", `{"amount":100}`)           // no key
	fmt.Println("charges:", charges)
	// Output:
	// 201  {"charge":1}
	// 201 true {"charge":1}
	// 201 true {"charge":1}
	// 422  {"type":"https://scalekit.dev/problems/idempotency-key-reused","title":"Idempotency-Key is already used","status":422,"detail":"this Idempotency-Key was used with a different request; use a new key for a new request"}
	// 400  {"type":"https://scalekit.dev/problems/idempotency-key-missing","title":"Idempotency-Key is missing","status":400,"detail":"this endpoint requires an Idempotency-Key header"}
	// charges: 1
}

func ExampleGuard() {
	g, err := idempotency.NewGuard(idempotency.GuardOptions{}) // a shared Store in production
	if err != nil {
		panic(err)
	}
	sendWelcome := func(ctx context.Context) ([]byte, error) {
		fmt.Println("sending the welcome email")
		return []byte("msg-123"), nil
	}
	for delivery := 1; delivery <= 2; delivery++ { // at-least-once delivery
		id, err := g.Do(context.Background(), "welcome:user-42", sendWelcome)
		fmt.Println(delivery, string(id), err)
	}
	// Output:
	// sending the welcome email
	// 1 msg-123 <nil>
	// 2 msg-123 <nil>
}
