package natsrelay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/natsrelay"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/queue/queueredis"
	"github.com/scalekit-go/scalekit/scalekittest"
)

// childEnv turns the test binary into a relay process (the kill test's):
// its value is "<backend target>#<NATS URL>".
const childEnv = "SCALEKIT_NATSRELAY_CHILD"

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(childRelay(v))
	}
	testinfra.Main(m)
}

// The test's names: the relay's queue, the topic and the stream.
const (
	relayQueue = "to-nats"
	topic      = "orders"
	streamName = "EVENTS"
)

// event is the payload of the tests' events: its key and its place among
// the events of that key.
type event struct {
	Key string `json:"key"`
	N   int    `json:"n"`
}

// eventID is the id of the n-th event of key. Its hash prefix makes the
// ids sort in no useful order, so nothing can keep an order by sorting
// on them.
func eventID(key string, n int) string {
	s := fmt.Sprintf("%s-%06d", key, n)
	return fmt.Sprintf("%08x-%s", crc32.ChecksumIEEE([]byte(s)), s)
}

// natsFixture is a JetStream server with the EVENTS stream on "events.>".
type natsFixture struct {
	srv *scalekittest.NATSServer
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(t testing.TB) *natsFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv, err := scalekittest.StartNATS(ctx, scalekittest.NATSOptions{})
	if err != nil {
		if errors.Is(err, scalekittest.ErrMissingBinary) && !testinfra.RequireServers() {
			t.Skipf("skipping: %v (%s=1 makes this a failure)", err, testinfra.RequireServersEnv)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	f := &natsFixture{srv: srv}
	f.nc, f.js = connect(t, srv.URL())
	if _, err := f.js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{natsrelay.DefaultSubjectPrefix + ">"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	return f
}

// connect returns a connection that reconnects forever, closed at cleanup.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// backends runs fn on a queue on PostgreSQL and on Redis; target is what
// a child process needs to reach the same backend (newBackend).
func backends(t *testing.T, fn func(t *testing.T, b queue.Backend, target string)) {
	t.Run("postgres", func(t *testing.T) {
		f := testinfra.Postgres(t)
		b, err := queuepg.New(queuepg.Options{Pool: f.Primary})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		fn(t, b, "pg|"+f.PrimaryURL)
	})
	t.Run("redis", func(t *testing.T) {
		f := testinfra.Redis(t)
		b, err := queueredis.New(queueredis.Options{Client: f.Client, Timeout: testinfra.CallTimeout})
		if err != nil {
			t.Fatal(err)
		}
		fn(t, b, "redis|"+f.Addr())
	})
}

// newBackend connects a child process to the backend at target.
func newBackend(target string) (queue.Backend, func(), error) {
	kind, addr, _ := strings.Cut(target, "|")
	if kind == "pg" {
		pool, err := pgxpool.New(context.Background(), addr)
		if err != nil {
			return nil, nil, err
		}
		b, err := queuepg.New(queuepg.Options{Pool: pool})
		if err != nil {
			return nil, nil, err
		}
		return b, func() { b.Close(); pool.Close() }, nil
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	b, err := queueredis.New(queueredis.Options{Client: rdb, Timeout: testinfra.CallTimeout})
	return b, func() { rdb.Close() }, err
}

// produce publishes n events per key for keys k00..k<keys-1> on the
// topic relayQueue subscribes to: one goroutine per key publishes its
// events one after the other.
func produce(t testing.TB, b queue.Backend, keys, n int) []string {
	t.Helper()
	c, err := queue.NewClient(queue.ClientOptions{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(context.Background(), topic, relayQueue); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for k := range keys {
		key := fmt.Sprintf("k%02d", k)
		for i := range n {
			ids = append(ids, eventID(key, i))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if _, err := c.Publish(context.Background(), topic, event{Key: key, N: i},
					queue.PublishOptions{ID: eventID(key, i), Key: key}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// stored is one message of the stream.
type stored struct {
	seq     uint64
	id, key string
	ev      event
}

// readStream returns every message of the stream, in stream order.
func readStream(t testing.TB, js jetstream.JetStream) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		st := stored{seq: seq, id: m.Header.Get(jetstream.MsgIDHeader), key: m.Header.Get(natsrelay.HeaderKey)}
		if err := json.Unmarshal(m.Data, &st.ev); err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, st)
	}
	return out
}

// streamCount is the number of messages in the stream (0 when NATS does
// not answer).
func streamCount(js jetstream.JetStream) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, streamName)
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// checkStream checks the stream against the events produced: every id is
// there; each message carries the id of its own event and its key; for
// every key the first occurrences of its events are in order. It returns
// the number of duplicates.
func checkStream(t testing.TB, msgs []stored, ids []string) int {
	t.Helper()
	first := map[string]bool{}
	last := map[string]int{}
	dups := 0
	for _, m := range msgs {
		if m.id != eventID(m.ev.Key, m.ev.N) || m.key != m.ev.Key {
			t.Fatalf("message %d has id %q and key %q, its event is %+v", m.seq, m.id, m.key, m.ev)
		}
		if first[m.id] {
			dups++
			continue
		}
		first[m.id] = true
		if l, ok := last[m.key]; ok && m.ev.N < l {
			t.Fatalf("key %s: event %d is stored (seq %d) after event %d", m.key, m.ev.N, m.seq, l)
		}
		last[m.key] = m.ev.N
	}
	for _, id := range ids {
		if !first[id] {
			t.Fatalf("event %s is not in the stream (%d messages, %d distinct, %d events)", id, len(msgs), len(first), len(ids))
		}
	}
	if len(first) != len(ids) {
		t.Fatalf("%d distinct events in the stream, %d produced", len(first), len(ids))
	}
	return dups
}

func newRelay(t testing.TB, o natsrelay.Options) *natsrelay.Relay {
	t.Helper()
	r, err := natsrelay.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func counts(t testing.TB, b queue.Backend) queue.Counts {
	t.Helper()
	c, err := b.Counts(context.Background(), relayQueue)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRelayInOrder(t *testing.T) {
	backends(t, func(t *testing.T, b queue.Backend, _ string) {
		nf := startNATS(t)
		ids := produce(t, b, 20, 100)
		r := newRelay(t, natsrelay.Options{Backend: b, Queue: relayQueue, JetStream: nf.js, Lease: 5 * time.Second})
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 2*time.Minute, "every event relayed", func() bool { return counts(t, b).Done == int64(len(ids)) })
		if err := r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if dups := checkStream(t, readStream(t, nf.js), ids); dups != 0 {
			t.Fatalf("%d duplicates without a failure", dups)
		}
		st := r.Stats()
		if st.Relayed != int64(len(ids)) || st.Failures != 0 || st.Owner || st.Batches == 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// childRelay is the relay process of TestRelayKilled: it relays until it
// is killed.
func childRelay(v string) int {
	target, url, _ := strings.Cut(v, "#")
	b, closeB, err := newBackend(target)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer closeB()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	js, _ := jetstream.New(nc)
	o := killOptions(b, js)
	// Publish slowly, so the kill finds events leased and not yet sent.
	o.Subject = func(m *queue.Message) string {
		time.Sleep(2 * time.Millisecond)
		return natsrelay.DefaultSubjectPrefix + m.Kind
	}
	r, err := natsrelay.New(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r.Start(context.Background())
	fmt.Println("relay started")
	select {} // until SIGKILL
}

// killOptions are the relays' options in TestRelayKilled: small batches
// and a short lease, so the kill finds a batch in flight and the second
// relay takes over within 2s.
func killOptions(b queue.Backend, js jetstream.JetStream) natsrelay.Options {
	return natsrelay.Options{Backend: b, Queue: relayQueue, JetStream: js, Batch: 20, Concurrency: 4, Lease: time.Second,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
}

// A relay process SIGKILLed mid-stream loses nothing: a second relay
// takes over, every event ends in the stream, the first occurrences are
// in order per key, and the events sent twice carry their own id.
func TestRelayKilled(t *testing.T) {
	backends(t, func(t *testing.T, b queue.Backend, target string) {
		nf := startNATS(t)
		ids := produce(t, b, 10, 200)
		child := exec.Command(os.Args[0], "-test.run=^$")
		child.Env = append(os.Environ(), childEnv+"="+target+"#"+nf.srv.URL())
		out, _ := child.StdoutPipe()
		child.Stderr = os.Stderr
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			child.Process.Kill()
			child.Wait()
		})
		buf := make([]byte, 64)
		if n, _ := out.Read(buf); !strings.Contains(string(buf[:n]), "relay started") {
			t.Fatalf("child: %q", buf[:n])
		}
		poll.Until(t, 2*time.Minute, "the child relaying 1100 events (past its first, takeover batch)", func() bool { return streamCount(nf.js) >= 1100 })
		if err := child.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		child.Wait()
		before := counts(t, b)
		inStream := streamCount(nf.js)
		t.Logf("killed the relay with %d events in the stream, %d done, %d leased", inStream, before.Done, before.Active)

		r := newRelay(t, killOptions(b, nf.js))
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 3*time.Minute, "every event relayed", func() bool { return counts(t, b).Done == int64(len(ids)) })
		r.Close()
		dups := checkStream(t, readStream(t, nf.js), ids)
		st := r.Stats()
		t.Logf("second relay: %+v; %d duplicates in the stream", st, dups)
		if got := counts(t, b); got.Dead != 0 || got.Done != int64(len(ids)) {
			t.Fatalf("counts %+v", got)
		}
		if inStream == uint64(len(ids)) {
			t.Fatalf("the child relayed everything before the kill: the test killed nothing mid-stream")
		}
	})
}

// With NATS stopped mid-stream the relay backs off, dead-letters
// nothing, and delivers everything once NATS is back.
func TestNATSDown(t *testing.T) {
	backends(t, func(t *testing.T, b queue.Backend, _ string) {
		nf := startNATS(t)
		ids := produce(t, b, 10, 100)
		r := newRelay(t, natsrelay.Options{Backend: b, Queue: relayQueue, JetStream: nf.js, Batch: 20, Lease: 2 * time.Second, MaxBackoff: 500 * time.Millisecond})
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, time.Minute, "some events relayed", func() bool { return r.Stats().Relayed >= 100 })
		if err := nf.srv.Stop(); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, time.Minute, "publishes failing", func() bool { return r.Stats().Failures >= 3 })
		if c := counts(t, b); c.Dead != 0 || c.Done >= int64(len(ids)) {
			t.Fatalf("with NATS down: counts %+v", c)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := nf.srv.Start(ctx); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 2*time.Minute, "every event relayed after NATS came back", func() bool { return counts(t, b).Done == int64(len(ids)) })
		r.Close()
		checkStream(t, readStream(t, nf.js), ids)
		if c := counts(t, b); c.Dead != 0 {
			t.Fatalf("counts %+v", c)
		}
		t.Logf("stats %+v", r.Stats())
	})
}

// Two relays on one queue, producers enqueueing many keys at once from
// many goroutines, and the first relay shut down halfway: the second
// takes over, and every key's events are in the stream in order.
func TestTwoRelaysHammer(t *testing.T) {
	f := testinfra.Redis(t)
	b, err := queueredis.New(queueredis.Options{Client: f.Client, Timeout: testinfra.CallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	nf := startNATS(t)
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	o := natsrelay.Options{Backend: b, Queue: relayQueue, JetStream: nf.js, Batch: 50, Lease: 2 * time.Second}
	r1, r2 := newRelay(t, o), newRelay(t, o)
	ctx := context.Background()
	if err := c.Subscribe(ctx, topic, relayQueue); err != nil {
		t.Fatal(err)
	}
	if err := r1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "the first relay holding the queue", func() bool { return r1.Stats().Owner })
	if err := r2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const keys, perKey = 40, 50
	var wg sync.WaitGroup
	var ids []string
	for k := range keys {
		key := fmt.Sprintf("k%02d", k)
		for i := range perKey {
			ids = append(ids, eventID(key, i))
		}
		wg.Add(1)
		go func() { // one producer per key: its events are enqueued in order
			defer wg.Done()
			for i := range perKey {
				if _, err := c.Publish(ctx, topic, event{Key: key, N: i},
					queue.PublishOptions{ID: eventID(key, i), Key: key}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	poll.Until(t, time.Minute, "a quarter of the events relayed", func() bool { return r1.Stats().Relayed >= keys*perKey/4 })
	if r2.Stats().Owner || r2.Stats().Relayed != 0 {
		t.Fatalf("the second relay published while the first held the queue: %+v", r2.Stats())
	}
	if err := r1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	poll.Until(t, 2*time.Minute, "every event relayed", func() bool { return counts(t, b).Done == keys*perKey })
	s1, s2 := r1.Stats(), r2.Stats()
	t.Logf("first relay %+v, second %+v", s1, s2)
	if s2.Relayed == 0 || !s2.Owner {
		t.Fatalf("the second relay did not take over: %+v", s2)
	}
	checkStream(t, readStream(t, nf.js), ids)
}

// The backend fails mid-stream (Redis frozen, PostgreSQL stopped):
// fetches and outcomes fail, the relay waits for the leases a lost reply
// may have granted, and once the backend answers everything arrives, in
// order, nothing dead-lettered.
func TestBackendDown(t *testing.T) {
	run := func(t *testing.T, b queue.Backend, down, up func()) {
		nf := startNATS(t)
		ids := produce(t, b, 10, 100)
		r := newRelay(t, natsrelay.Options{Backend: b, Queue: relayQueue, JetStream: nf.js, Batch: 20, Lease: time.Second,
			MaxBackoff: 200 * time.Millisecond, Logger: testLogger()})
		if err := r.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, time.Minute, "some events relayed", func() bool { return r.Stats().Relayed >= 100 })
		down()
		time.Sleep(time.Second) // the outage: no condition to wait for
		up()
		poll.Until(t, 2*time.Minute, "every event relayed", func() bool { return counts(t, b).Done == int64(len(ids)) })
		r.Close()
		dups := checkStream(t, readStream(t, nf.js), ids)
		if c := counts(t, b); c.Dead != 0 {
			t.Fatalf("counts %+v", c)
		}
		t.Logf("stats %+v, %d duplicates in the stream", r.Stats(), dups)
	}
	t.Run("redis paused", func(t *testing.T) {
		f := testinfra.Redis(t)
		b, err := queueredis.New(queueredis.Options{Client: f.Client, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		run(t, b, f.Pause, f.Resume)
	})
	t.Run("postgres stopped", func(t *testing.T) {
		f := testinfra.Postgres(t)
		b, err := queuepg.New(queuepg.Options{Pool: f.Primary})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if err := b.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		run(t, b, func() { f.StopPrimary(testinfra.StopFast) }, f.StartPrimary)
	})
}

// An event whose subject is not valid is dead-lettered; the others of
// its key go on.
func TestBadSubjectDeadLetters(t *testing.T) {
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	nf := startNATS(t)
	ids := produce(t, b, 2, 5)
	r := newRelay(t, natsrelay.Options{Backend: b, Queue: relayQueue, JetStream: nf.js, Subject: func(m *queue.Message) string {
		if m.ID == eventID("k00", 2) {
			return "events..bad"
		}
		return "events." + m.Kind
	}})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "every event done or dead", func() bool { c := counts(t, b); return c.Done+c.Dead == int64(len(ids)) })
	r.Close()
	if c := counts(t, b); c.Dead != 1 || r.Stats().DeadLettered != 1 {
		t.Fatalf("counts %+v, stats %+v", c, r.Stats())
	}
	dead, _ := b.Dead(context.Background(), relayQueue, 10)
	if len(dead) != 1 || dead[0].ID != eventID("k00", 2) || !strings.Contains(dead[0].LastError, "events..bad") {
		t.Fatalf("dead letters %+v", dead)
	}
	if got := len(readStream(t, nf.js)); got != len(ids)-1 {
		t.Fatalf("%d events in the stream, want %d", got, len(ids)-1)
	}
}

// A paused queue is not relayed until it is resumed.
func TestPausedQueue(t *testing.T) {
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	nf := startNATS(t)
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	if err := c.Pause(ctx, relayQueue); err != nil {
		t.Fatal(err)
	}
	ids := produce(t, b, 1, 3)
	r := newRelay(t, natsrelay.Options{Backend: b, Queue: relayQueue, JetStream: nf.js})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "the relay seeing the pause", func() bool { return r.Stats().Paused })
	if n := counts(t, b).Done; n != 0 {
		t.Fatalf("%d events relayed from a paused queue", n)
	}
	if err := c.Resume(ctx, relayQueue); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "every event relayed", func() bool { return counts(t, b).Done == int64(len(ids)) })
}

// someJetStream stands for a JetStream in the option checks, which never
// call it.
type someJetStream struct{ jetstream.JetStream }

func TestBadOptions(t *testing.T) {
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	js := someJetStream{}
	long := strings.Repeat("q", 100)
	for _, c := range []struct {
		name string
		o    natsrelay.Options
		want string
	}{
		{"no backend", natsrelay.Options{Queue: "q", JetStream: js}, "Options.Backend"},
		{"no jetstream", natsrelay.Options{Backend: b, Queue: "q"}, "Options.JetStream"},
		{"no queue", natsrelay.Options{Backend: b, JetStream: js}, "Options.Queue"},
		{"bad queue", natsrelay.Options{Backend: b, Queue: "a b", JetStream: js}, "Options.Queue"},
		{"batch", natsrelay.Options{Backend: b, Queue: "q", JetStream: js, Batch: natsrelay.MaxBatch + 1}, "Options.Batch"},
		{"negative batch", natsrelay.Options{Backend: b, Queue: "q", JetStream: js, Batch: -1}, "Options.Batch"},
		{"lease", natsrelay.Options{Backend: b, Queue: "q", JetStream: js, Lease: time.Millisecond}, "Options.Lease"},
		{"fetch wait", natsrelay.Options{Backend: b, Queue: "q", JetStream: js, Lease: time.Second, FetchWait: time.Second}, "Options.FetchWait"},
		{"publish timeout", natsrelay.Options{Backend: b, Queue: "q", JetStream: js, PublishTimeout: -time.Second}, "Options.PublishTimeout"},
		{"concurrency", natsrelay.Options{Backend: b, Queue: "q", JetStream: js, Concurrency: -1}, "Options.Concurrency"},
		{"backoff", natsrelay.Options{Backend: b, Queue: "q", JetStream: js, MaxBackoff: time.Millisecond}, "Options.MaxBackoff"},
		{"long queue", natsrelay.Options{Backend: b, Queue: long, JetStream: js}, "Options.LockQueue"},
		{"lock queue", natsrelay.Options{Backend: b, Queue: "q", JetStream: js, LockQueue: "q"}, "Options.LockQueue"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := natsrelay.New(c.o)
			if !errors.Is(err, natsrelay.ErrInvalid) || !strings.Contains(err.Error(), c.want) || r != nil {
				t.Fatalf("New: %v, %v; want ErrInvalid naming %s", r, err, c.want)
			}
		})
	}
	r, err := natsrelay.New(natsrelay.Options{Backend: b, Queue: long, JetStream: js, LockQueue: "lock"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); !errors.Is(err, natsrelay.ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

// testLogger writes warnings and errors to stderr.
func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// An event larger than the stream's MaxMsgSize is dead-lettered with the
// reason; metadata travels as headers, but for pairs that cannot be one.
func TestTooLargeAndHeaders(t *testing.T) {
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	nf := startNATS(t)
	ctx := context.Background()
	if _, err := nf.js.UpdateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{natsrelay.DefaultSubjectPrefix + ">"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, MaxMsgSize: 2048}); err != nil {
		t.Fatal(err)
	}
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	md := map[string]string{queue.MetadataEventKey: "k", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"bad name": "x", "bad-value": "a\r\nb"}
	if _, err := c.Enqueue(ctx, relayQueue, topic, strings.Repeat("x", 4096), queue.EnqueueOptions{ID: "big", Metadata: md}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, relayQueue, topic, "small", queue.EnqueueOptions{ID: "small", Metadata: md}); err != nil {
		t.Fatal(err)
	}
	r := newRelay(t, natsrelay.Options{Backend: b, Queue: relayQueue, JetStream: nf.js})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, time.Minute, "both events done or dead", func() bool { c := counts(t, b); return c.Done+c.Dead == 2 })
	r.Close()
	dead, _ := b.Dead(ctx, relayQueue, 10)
	if len(dead) != 1 || dead[0].ID != "big" || !strings.Contains(dead[0].LastError, "too large") || r.Stats().DeadLettered != 1 {
		t.Fatalf("dead letters %+v, stats %+v", dead, r.Stats())
	}
	s, _ := nf.js.Stream(ctx, streamName)
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	h := m.Header
	if string(m.Data) != `"small"` || h.Get(jetstream.MsgIDHeader) != "small" || h.Get(natsrelay.HeaderKey) != "k" ||
		h.Get("traceparent") != md["traceparent"] || h.Get("bad name") != "" || h.Get("bad-value") != "" || h.Get(queue.MetadataEventKey) != "" {
		t.Fatalf("message %q, headers %v", m.Data, h)
	}
}

// orphaning is a Backend whose first fetch of relayQueue loses its reply
// when the caller gives up: it waits until the caller's ctx ends (or
// FetchWait passes), then leases up to 5 events with a ctx of its own and,
// if the caller had given up, returns the ctx's error, the events leased
// to nobody, as when a reply is lost to a cancelled call.
type orphaning struct {
	queue.Backend
	wait    time.Duration
	once    sync.Once
	entered chan struct{}
}

func (o *orphaning) Fetch(ctx context.Context, req queue.FetchRequest) ([]*queue.Lease, error) {
	first := false
	if req.Queue == relayQueue {
		o.once.Do(func() { first = true })
	}
	if !first {
		return o.Backend.Fetch(ctx, req)
	}
	close(o.entered)
	select {
	case <-ctx.Done():
	case <-time.After(o.wait):
	}
	req.Max, req.Wait = 5, 0
	ls, err := o.Backend.Fetch(context.WithoutCancel(ctx), req)
	if err == nil && ctx.Err() != nil {
		return nil, ctx.Err() // the leases are orphaned
	}
	return ls, err
}

// A relay stopped while its fetch is in flight must not hand the queue
// over while that fetch may have leased events to nobody: the successor
// would publish the events behind them first. Shutdown lets the fetch
// finish and relays its batch; Close (the fetch cut short) leaves the
// hold to run out after the orphaned leases. Both fail when the relay
// gives the hold back at once (the order broken, as TestTwoRelaysHammer
// saw now and then).
func TestStopDuringFetch(t *testing.T) {
	for _, how := range []string{"shutdown", "close"} {
		t.Run(how, func(t *testing.T) {
			backends(t, func(t *testing.T, b queue.Backend, _ string) {
				nf := startNATS(t)
				ids := produce(t, b, 1, 20)
				const lease = 2 * time.Second
				o := &orphaning{Backend: b, wait: lease / 4, entered: make(chan struct{})}
				r1 := newRelay(t, natsrelay.Options{Backend: o, Queue: relayQueue, JetStream: nf.js, Batch: 5, Lease: lease})
				r2 := newRelay(t, natsrelay.Options{Backend: b, Queue: relayQueue, JetStream: nf.js, Batch: 5, Lease: lease})
				ctx := context.Background()
				if err := r1.Start(ctx); err != nil {
					t.Fatal(err)
				}
				<-o.entered
				if err := r2.Start(ctx); err != nil {
					t.Fatal(err)
				}
				if how == "shutdown" {
					if err := r1.Shutdown(ctx); err != nil {
						t.Fatal(err)
					}
				} else {
					r1.Close()
				}
				poll.Until(t, time.Minute, "every event relayed", func() bool { return counts(t, b).Done == int64(len(ids)) })
				t.Logf("first relay %+v, second %+v", r1.Stats(), r2.Stats())
				checkStream(t, readStream(t, nf.js), ids)
			})
		})
	}
}
