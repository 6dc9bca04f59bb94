package retry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/retry"
)

func ExampleRetrier_Do() {
	r, err := retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{D: time.Millisecond}})
	if err != nil {
		panic(err)
	}
	calls := 0
	err = r.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("connection reset")
		}
		return nil
	})
	fmt.Println(err, calls)

	err = r.Do(context.Background(), func(ctx context.Context) error { return errors.New("503") })
	fmt.Println(errors.Is(err, retry.ErrExhausted))
	fmt.Println(err)
	// Output:
	// <nil> 3
	// true
	// retry: gave up after 3 attempts (max attempts): 503
}

func ExampleDo() {
	// The default Retrier: 3 attempts, full jitter from 100ms. A Permanent
	// error is not retried.
	errNotFound := errors.New("user not found")
	calls := 0
	err := retry.Do(context.Background(), func(ctx context.Context) error {
		calls++
		return retry.Permanent(errNotFound)
	})
	fmt.Println(errors.Is(err, errNotFound), calls)
	// Output: true 1
}

func ExampleDoValue() {
	r, _ := retry.New(retry.Options{Backoff: retry.Constant{}})
	calls := 0
	name, err := retry.DoValue(context.Background(), r, func(ctx context.Context) (string, error) {
		calls++
		if calls == 1 {
			return "", io.ErrUnexpectedEOF
		}
		return "ada", nil
	})
	fmt.Println(name, err)
	// Output: ada <nil>
}

func ExampleExhaustedError() {
	r, _ := retry.New(retry.Options{MaxAttempts: 2, Backoff: retry.Constant{}})
	err := r.Do(context.Background(), func(ctx context.Context) error { return io.EOF })
	var ee *retry.ExhaustedError
	if errors.As(err, &ee) {
		fmt.Println(ee.Attempts, ee.Reason, ee.Last)
	}
	fmt.Println(errors.Is(err, io.EOF))
	// Output:
	// 2 max attempts EOF
	// true
}

func ExampleBudget() {
	// One budget per dependency, shared by every caller of it: retries may
	// add 10% to the calls, plus a floor of 1 retry per second.
	budget, _ := retry.NewBudget(retry.BudgetOptions{Ratio: 0.1, MinRetriesPerSecond: 1})
	r, _ := retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{}, Budget: budget})
	attempts := 0
	var err error
	for range 100 { // the dependency is down
		err = r.Do(context.Background(), func(ctx context.Context) error { attempts++; return errors.New("down") })
	}
	fmt.Printf("100 calls -> %d attempts (without the budget: 300)\n", attempts)
	fmt.Println(errors.Is(err, retry.ErrBudgetExhausted))
	st := budget.Stats() // Tokens refills with time (the floor), so it is left out here
	fmt.Printf("deposits %d, withdrawals %d, refusals %d, under one token left: %v\n", st.Deposits, st.Withdrawals, st.Refusals, st.Tokens < 1)
	// Output:
	// 100 calls -> 111 attempts (without the budget: 300)
	// true
	// deposits 100, withdrawals 11, refusals 100, under one token left: true
}

func ExampleParseRetryAfter() {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	d, ok := retry.ParseRetryAfter("120", now)
	fmt.Println(d, ok)
	d, ok = retry.ParseRetryAfter("Tue, 24 Nov 2026 12:00:30 GMT", now)
	fmt.Println(d, ok)
	d, ok = retry.ParseRetryAfter("soon", now)
	fmt.Println(d, ok)
	// Output:
	// 2m0s true
	// 30s true
	// 0s false
}

func ExampleTransport() {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()

	r, _ := retry.New(retry.Options{Backoff: retry.Constant{D: time.Millisecond}})
	client := &http.Client{Transport: &retry.Transport{Retrier: r}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body), hits.Load())
	// Output: 200 hello 2
}

func ExampleHedge() {
	var attempts atomic.Int32
	v, err := retry.Hedge(context.Background(), time.Millisecond, 1, nil, func(ctx context.Context) (string, error) {
		if attempts.Add(1) == 1 {
			<-ctx.Done() // a stuck replica: the hedge answers, this one is cancelled
			return "", ctx.Err()
		}
		return "from the hedge", nil
	})
	fmt.Println(v, err)
	// Output: from the hedge <nil>
}

func ExampleAfterError() {
	// A server asks for an hour; Options.MaxRetryAfter (default 30s) caps
	// what Do honours, so it gives up at once with the server's answer
	// instead of sleeping an hour.
	r, _ := retry.New(retry.Options{})
	errBusy := errors.New("503 busy")
	err := r.Do(context.Background(), func(ctx context.Context) error {
		return &retry.AfterError{Err: errBusy, After: time.Hour}
	})
	var ee *retry.ExhaustedError
	fmt.Println(errors.As(err, &ee) && ee.Reason == retry.ReasonRetryAfter, errors.Is(err, errBusy))
	fmt.Println(err)
	// Output:
	// true true
	// retry: gave up after 1 attempt (Retry-After over MaxRetryAfter): 503 busy
}

func ExamplePacer() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit", `"default";r=0;t=30`) // quota spent for 30s
	}))
	defer srv.Close()
	client := &http.Client{Transport: &retry.Pacer{}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	_, err = client.Get(srv.URL) // not sent: the server would refuse it
	fmt.Println(errors.Is(err, retry.ErrRateLimited))
	// Output: true
}
