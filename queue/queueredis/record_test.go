package queueredis

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// A record is pairs of a field and its value (HGETALL's order, which a
// hash with a long value does not keep), the last pair of a name
// winning; fields it does not know are skipped; an odd record or one
// without an id is malformed.
func TestParseRecord(t *testing.T) {
	rec := []any{"state", "pending", "kind", "k", "unknown_future_field", "x", "attempt", "1", "id", "j1", "state", "active", "attempt", "2", "token", "t.1"}
	m, tok, _, err := parseRecord("q", rec)
	if err != nil || m.ID != "j1" || m.Queue != "q" || m.Kind != "k" || m.State != queue.Active || m.Attempt != 2 || tok != "t.1" {
		t.Fatalf("parseRecord = %+v %q %v", m, tok, err)
	}
	for _, bad := range [][]any{{"state", "pending", "id"}, {"state", "pending"}, {"id", int64(3)}, {"attempt", "two", "id", "j"}} {
		if _, _, _, err := parseRecord("q", bad); err == nil {
			t.Errorf("parseRecord(%v) = nil error, want malformed", bad)
		}
	}
}

// The fields of every form of enqueue come back whole through Fetch, Job
// and List: enqueueScript's short form (no unique key, attempt, error or
// metadata) and its long form, with a payload long enough that Redis
// keeps the hash as a hashtable (HGETALL in no fixed order).
func TestEnqueueFormsRoundTrip(t *testing.T) {
	r := testinfra.Redis(t)
	clk := testclock.New()
	b := newBackend(t, Options{Client: r.Client, Clock: clk})
	ctx := context.Background()
	long := []byte(strings.Repeat("p", 300))
	msgs := []*queue.Message{
		{ID: "short", Queue: "forms", Kind: "a", Payload: []byte("x"), Priority: queue.Low, MaxAttempts: 3, Timeout: time.Second,
			RunAt: clk.Now(), EnqueuedAt: clk.Now()},
		{ID: "long", Queue: "forms", Kind: "b", Payload: long, Priority: queue.High, MaxAttempts: 5, Attempt: 2, LastError: "boom",
			UniqueKey: "u", UniqueWhileActive: true, Metadata: map[string]string{"trace": "t1"}, RunAt: clk.Now(), EnqueuedAt: clk.Now()},
	}
	for _, m := range msgs {
		if err := b.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if enc, _ := r.Client.ObjectEncoding(ctx, "{queue:forms}:job:long").Result(); enc != "hashtable" {
		t.Logf("the long job's hash is %s, not a hashtable: the order test is weaker", enc)
	}
	check := func(how string, got *queue.Message, want *queue.Message, state queue.State, attempt int) {
		t.Helper()
		if got.ID != want.ID || got.Kind != want.Kind || string(got.Payload) != string(want.Payload) || got.Priority != want.Priority ||
			got.MaxAttempts != want.MaxAttempts || got.Attempt != attempt || got.LastError != want.LastError ||
			got.UniqueKey != want.UniqueKey || got.UniqueWhileActive != want.UniqueWhileActive || got.Metadata["trace"] != want.Metadata["trace"] ||
			got.Timeout != want.Timeout || !got.EnqueuedAt.Equal(want.EnqueuedAt) || got.State != state {
			t.Errorf("%s: %s = %+v, want %+v in state %s, attempt %d", how, want.ID, got, want, state, attempt)
		}
	}
	for _, m := range msgs {
		got, err := b.Job(ctx, "forms", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		check("Job", got, m, queue.Pending, m.Attempt)
	}
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "forms", Max: 5, Lease: time.Minute, Order: highFirst})
	if err != nil || len(ls) != 2 {
		t.Fatalf("Fetch = %v, %v", ls, err)
	}
	for i, l := range ls {
		m := msgs[1-i] // High first
		check("Fetch", l.Msg, m, queue.Active, m.Attempt+1)
		if l.Token == "" || !l.Until.Equal(clk.Now().Add(time.Minute)) || !l.Msg.StartedAt.Equal(clk.Now()) {
			t.Errorf("lease of %s: token %q, until %v, started %v", m.ID, l.Token, l.Until, l.Msg.StartedAt)
		}
	}
	page, _, err := b.List(ctx, queue.ListQuery{Queue: "forms", Limit: 10, State: queue.Active})
	if err != nil || len(page) != 2 {
		t.Fatalf("List = %v, %v", page, err)
	}
	clk.Add(2 * time.Minute) // the leases run out: reported pending
	for _, m := range msgs {
		got, err := b.Job(ctx, "forms", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		check("Job after the lease ran out", got, m, queue.Pending, m.Attempt+1)
	}
}

// The wake stream gets its TTL from the first enqueue (a new stream's
// first entry is the first of its millisecond) and keeps one.
func TestWakeStreamTTL(t *testing.T) {
	r := testinfra.Redis(t)
	b := newBackend(t, Options{Client: r.Client})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	for range 50 {
		if _, err := c.Enqueue(ctx, "ttl", "k", nil, queue.EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
		if ttl, _ := r.Client.PTTL(ctx, "{queue:ttl}:wake").Result(); ttl <= 23*time.Hour || ttl > 24*time.Hour {
			t.Fatalf("wake stream TTL %v, want about a day", ttl)
		}
	}
}
