package metrics_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/queue"
)

// A Collector for this instance ("api-1"), with a breaker that tripped,
// registered on a registry of the program's own and served on /metrics.
func Example() {
	br, _ := breaker.New(breaker.Options{Name: "payments", ConsecutiveFailures: 2})
	for range 3 {
		br.Do(context.Background(), func(ctx context.Context) error { return errors.New("connection refused") })
	}

	m, err := metrics.New(metrics.Options{Instance: "api-1"})
	if err != nil {
		panic(err)
	}
	if err := m.AddBreaker(br); err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry() // never the global one
	reg.MustRegister(m)
	handler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})

	// What a scrape of /metrics returns, the breaker's state and calls:
	w := httptest.NewRecorder()
	handler.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(w.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "scalekit_breaker_state") || strings.HasPrefix(line, "scalekit_breaker_calls_total") {
			fmt.Println(line)
		}
	}
	// Output:
	// scalekit_breaker_calls_total{instance_name="api-1",name="payments",result="failure"} 2
	// scalekit_breaker_calls_total{instance_name="api-1",name="payments",result="ignored"} 0
	// scalekit_breaker_calls_total{instance_name="api-1",name="payments",result="rejected"} 1
	// scalekit_breaker_calls_total{instance_name="api-1",name="payments",result="success"} 0
	// scalekit_breaker_state{instance_name="api-1",name="payments",state="closed"} 0
	// scalekit_breaker_state{instance_name="api-1",name="payments",state="forced-closed"} 0
	// scalekit_breaker_state{instance_name="api-1",name="payments",state="forced-open"} 0
	// scalekit_breaker_state{instance_name="api-1",name="payments",state="half-open"} 0
	// scalekit_breaker_state{instance_name="api-1",name="payments",state="metrics-only"} 0
	// scalekit_breaker_state{instance_name="api-1",name="payments",state="open"} 1
}

// A queue's jobs per state, as its backend counts them at each scrape,
// with scalekit_queue_counts_up saying the count succeeded.
func ExampleCollector_AddQueue() {
	backend := queue.NewMemoryBackend(queue.MemoryBackendOptions{}) // queuepg or queueredis in production
	client, _ := queue.NewClient(queue.ClientOptions{Backend: backend})
	ctx := context.Background()
	client.Enqueue(ctx, "emails", "email:welcome", nil, queue.EnqueueOptions{})
	client.Enqueue(ctx, "emails", "email:digest", nil, queue.EnqueueOptions{Delay: time.Hour})

	m, _ := metrics.New(metrics.Options{})
	if err := m.AddQueue("jobs", client, "emails"); err != nil {
		panic(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	w := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(w.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "scalekit_queue_jobs") || strings.HasPrefix(line, "scalekit_queue_counts_up") {
			fmt.Println(line)
		}
	}
	// Output:
	// scalekit_queue_counts_up{name="jobs",queue="emails"} 1
	// scalekit_queue_jobs{name="jobs",queue="emails",state="active"} 0
	// scalekit_queue_jobs{name="jobs",queue="emails",state="cancelled"} 0
	// scalekit_queue_jobs{name="jobs",queue="emails",state="dead"} 0
	// scalekit_queue_jobs{name="jobs",queue="emails",state="done"} 0
	// scalekit_queue_jobs{name="jobs",queue="emails",state="pending"} 1
	// scalekit_queue_jobs{name="jobs",queue="emails",state="retry"} 0
	// scalekit_queue_jobs{name="jobs",queue="emails",state="scheduled"} 1
}
