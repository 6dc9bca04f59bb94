package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/queue/queueredis"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// cli runs the command in process with the given environment.
func cli(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errw bytes.Buffer
	code = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errw)
	return code, out.String(), errw.String()
}

// mustCLI runs the command and fails the test unless it exits 0.
func mustCLI(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, out, errs := cli(t, env, args...)
	if code != 0 {
		t.Fatalf("scalekit %s: exit %d, stderr:\n%s", strings.Join(args, " "), code, errs)
	}
	if errs != "" {
		t.Errorf("scalekit %s: stderr not empty:\n%s", strings.Join(args, " "), errs)
	}
	return out
}

// target is one real backend with the command-line flags and environment
// that reach it.
type target struct {
	b    queue.Backend
	env  map[string]string
	args []string // backend flags, put after the command
}

func redisTarget(t *testing.T) target {
	r := testinfra.Redis(t)
	b, err := queueredis.New(queueredis.Options{Client: r.Client, Prefix: "app", Timeout: testinfra.CallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	// Through the environment, the prefix by flag.
	return target{b: b, env: map[string]string{"REDIS_URL": r.Server.URL()}, args: []string{"-prefix", "app"}}
}

func clusterTarget(t *testing.T) target {
	c := testinfra.RedisCluster(t)
	b, err := queueredis.New(queueredis.Options{Client: c.Client, Prefix: c.Prefix + "queue", Timeout: testinfra.CallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	// Every master, comma-separated: a cluster without -cluster.
	url := "redis://" + strings.Join(c.Server.Addrs(), ",")
	return target{b: b, env: map[string]string{"DATABASE_URL": "postgres://ignored"},
		args: []string{"-redis", url, "-prefix", c.Prefix + "queue"}}
}

func postgresTarget(t *testing.T) target {
	pg := testinfra.Postgres(t)
	b, err := queuepg.New(queuepg.Options{Pool: pg.Primary, Prefix: "jobs"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Both variables set: -backend picks one.
	return target{b: b, env: map[string]string{"DATABASE_URL": pg.PrimaryURL, "REDIS_URL": "redis://127.0.0.1:1"},
		args: []string{"-backend", "postgres", "-prefix", "jobs"}}
}

var order = [3]queue.Priority{queue.High, queue.Default, queue.Low}

// fixture fills queue "emails" with one job in each of pending, scheduled,
// done (with progress and output) and dead, and "reports" with one pending
// job.
type fixture struct{ pending, scheduled, done, dead string }

func fill(t *testing.T, b queue.Backend) fixture {
	t.Helper()
	ctx := context.Background()
	c, err := queue.NewClient(queue.ClientOptions{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	enqueue := func(q, to string, o queue.EnqueueOptions) string {
		t.Helper()
		id, err := c.Enqueue(ctx, q, "send", map[string]string{"to": to}, o)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	lease := func(id string) *queue.Lease {
		t.Helper()
		ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "emails", Max: 1, Lease: time.Minute, Order: order})
		if err != nil || len(ls) != 1 || ls[0].Msg.ID != id {
			t.Fatalf("Fetch = %v, %v; want the lease of %s", ls, err, id)
		}
		return ls[0]
	}
	var f fixture
	f.done = enqueue("emails", "c", queue.EnqueueOptions{UniqueKey: "welcome-c", Metadata: map[string]string{"tenant": "acme", "note": "a b"}})
	l := lease(f.done)
	if err := b.Progress(ctx, l, 40, "half\tway"); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(ctx, l, []byte(`{"sent": true}`)); err != nil {
		t.Fatal(err)
	}
	f.dead = enqueue("emails", "d", queue.EnqueueOptions{MaxAttempts: 3})
	if err := b.Fail(ctx, lease(f.dead), "smtp: 550\nmailbox unavailable", time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	f.pending = enqueue("emails", "a", queue.EnqueueOptions{Priority: queue.High})
	f.scheduled = enqueue("emails", "b", queue.EnqueueOptions{Delay: time.Hour})
	enqueue("reports", "r", queue.EnqueueOptions{})
	return f
}

func TestQueueCommands(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target func(*testing.T) target
	}{
		{"redis", redisTarget},
		{"cluster", clusterTarget},
		{"postgres", postgresTarget},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := tc.target(t)
			f := fill(t, tg.b)
			cmd := func(name string, rest ...string) []string {
				return append(append([]string{"queue", name}, tg.args...), rest...)
			}
			env := tg.env

			// stats: a table with a header and a row per queue.
			out := mustCLI(t, env, cmd("stats", "emails", "reports")...)
			t.Logf("stats:\n%s", out)
			rows := checkTable(t, out, "QUEUE", "PENDING", "SCHEDULED", "ACTIVE", "RETRY", "DEAD", "CANCELLED", "DONE", "OLDEST PENDING", "PAUSED")
			if len(rows) != 2 {
				t.Fatalf("stats: %d rows, want 2:\n%s", len(rows), out)
			}
			if got, want := rows[0][:8], []string{"emails", "1", "1", "0", "0", "1", "0", "1"}; !slices.Equal(got, want) || rows[0][9] != "no" {
				t.Errorf("stats emails row = %q, want %q and not paused\n%s", got, want, out)
			}
			if got, want := rows[1][:8], []string{"reports", "1", "0", "0", "0", "0", "0", "0"}; !slices.Equal(got, want) || rows[1][9] != "no" {
				t.Errorf("stats reports row = %q, want %q and not paused\n%s", got, want, out)
			}
			for _, r := range rows {
				if d, err := time.ParseDuration(strings.TrimPrefix(r[8], "<")); err != nil || d > time.Minute {
					t.Errorf("stats %s: oldest pending %q, want a short age:\n%s", r[0], r[8], out)
				}
			}

			// stats -json.
			var stats []map[string]any
			decode(t, mustCLI(t, env, cmd("stats", "-json", "emails", "reports")...), &stats)
			if len(stats) != 2 {
				t.Fatalf("stats -json: %d queues, want 2", len(stats))
			}
			checkKeys(t, "stats", stats[0], "queue", "pending", "scheduled", "active", "retry", "dead", "cancelled", "done", "oldest_pending_ms", "paused")
			want := map[string]any{"queue": "emails", "pending": 1.0, "scheduled": 1.0, "active": 0.0, "retry": 0.0, "dead": 1.0, "cancelled": 0.0, "done": 1.0, "paused": false}
			for k, v := range want {
				if stats[0][k] != v {
					t.Errorf("stats -json emails %s = %v, want %v", k, stats[0][k], v)
				}
			}
			if stats[1]["queue"] != "reports" || stats[1]["pending"] != 1.0 {
				t.Errorf("stats -json reports = %v", stats[1])
			}

			// stats with no queue: every queue the backend knows.
			decode(t, mustCLI(t, env, cmd("stats", "-json")...), &stats)
			var names []string
			for _, st := range stats {
				names = append(names, st["queue"].(string))
			}
			if !slices.Contains(names, "emails") || !slices.Contains(names, "reports") || !slices.IsSorted(names) {
				t.Errorf("stats with no queue lists %q, want emails and reports among them, sorted", names)
			}
			rows = checkTable(t, mustCLI(t, env, cmd("stats")...), "QUEUE", "PENDING", "SCHEDULED", "ACTIVE", "RETRY", "DEAD", "CANCELLED", "DONE", "OLDEST PENDING", "PAUSED")
			if len(rows) != len(names) {
				t.Errorf("stats with no queue: %d rows, -json %d queues", len(rows), len(names))
			}

			// list: every job, newest first, with the queue's totals.
			out = mustCLI(t, env, cmd("list", "emails")...)
			t.Logf("list:\n%s", out)
			table, foot, _ := strings.Cut(out, "\n\n")
			rows = checkTable(t, table+"\n", "ID", "KIND", "STATE", "PRIORITY", "ATTEMPT", "ENQUEUED", "LAST ERROR")
			var listed []string
			for _, r := range rows {
				listed = append(listed, r[0]+" "+r[2])
			}
			if want := []string{f.scheduled + " scheduled", f.pending + " pending", f.dead + " dead", f.done + " done"}; !slices.Equal(listed, want) {
				t.Errorf("list = %q, want %q (newest first)", listed, want)
			}
			if foot != "queue emails: 1 pending, 1 scheduled, 0 active, 0 retry, 1 dead, 0 cancelled, 1 done\n" {
				t.Errorf("list footer = %q", foot)
			}
			// Two pages of two; the first says how to get the next.
			out = mustCLI(t, env, cmd("list", "emails", "-limit", "2")...)
			_, next, ok := strings.Cut(out, "next page: scalekit queue list emails -limit 2 -cursor ")
			if !ok || strings.Count(out, f.scheduled) != 1 || strings.Count(out, f.pending) != 1 {
				t.Fatalf("list -limit 2 = %q, want the two newest jobs and the next page's command", out)
			}
			next = strings.TrimSpace(next)
			var page map[string]any
			decode(t, mustCLI(t, env, cmd("list", "emails", "-json", "-limit", "2", "-cursor", next)...), &page)
			checkKeys(t, "list", page, "queue", "state", "kind", "jobs", "next", "totals")
			jobs, _ := page["jobs"].([]any)
			if len(jobs) != 2 || jobs[0].(map[string]any)["id"] != f.dead || jobs[1].(map[string]any)["id"] != f.done || page["next"] != "" {
				t.Errorf("list -cursor = %v, want the dead and done jobs and no next", page)
			}
			checkKeys(t, "list job", jobs[1].(map[string]any), "id", "queue", "kind", "state", "priority", "attempt", "max_attempts", "snoozes",
				"payload", "progress", "output", "last_error", "unique_key", "metadata", "enqueued_at", "run_at", "started_at", "finished_at")
			tot, _ := page["totals"].(map[string]any)
			checkKeys(t, "list totals", tot, "pending", "scheduled", "active", "retry", "dead", "cancelled", "done")
			if tot["dead"] != 1.0 || tot["done"] != 1.0 || tot["pending"] != 1.0 {
				t.Errorf("list -json totals = %v", tot)
			}
			// Filters.
			decode(t, mustCLI(t, env, cmd("list", "emails", "-json", "-state", "dead", "-kind", "send")...), &page)
			if jobs, _ := page["jobs"].([]any); len(jobs) != 1 || jobs[0].(map[string]any)["id"] != f.dead || page["state"] != "dead" || page["kind"] != "send" {
				t.Errorf("list -state dead -kind send = %v", page)
			}
			if out := mustCLI(t, env, cmd("list", "emails", "-state", "retry")...); !strings.HasPrefix(out, "no retry jobs in queue emails\n\nqueue emails: ") {
				t.Errorf("list -state retry = %q", out)
			}
			if out := mustCLI(t, env, cmd("list", "-json", "emails", "-kind", "nope")...); !strings.Contains(out, `"jobs": []`) {
				t.Errorf("list -json -kind nope = %q, want an empty list", out)
			}
			// A cursor of another listing is a usage error.
			code, out, errs := cli(t, env, cmd("list", "emails", "-state", "dead", "-cursor", next)...)
			if code != exitUsage || out != "" || !strings.Contains(errs, "-cursor \""+next+"\": not a cursor of this listing") {
				t.Errorf("list with another listing's cursor: exit %d, stdout %q, stderr %q", code, out, errs)
			}

			// show: the done job, with its progress and output.
			out = mustCLI(t, env, cmd("show", "emails", f.done)...)
			t.Logf("show:\n%s", out)
			kv := keyValues(t, out)
			for k, v := range map[string]string{
				"ID": f.done, "QUEUE": "emails", "KIND": "send", "STATE": "done", "PRIORITY": "default",
				"ATTEMPT": "1/10", "PAYLOAD": `{"to":"c"}`, "OUTPUT": `{"sent":true}`, "LAST ERROR": "-",
				"UNIQUE KEY": "welcome-c", "METADATA": `note="a b" tenant=acme`,
			} {
				if kv[k] != v {
					t.Errorf("show %s = %q, want %q\n%s", k, kv[k], v, out)
				}
			}
			if !strings.HasPrefix(kv["PROGRESS"], "40% half way (at 20") {
				t.Errorf("show PROGRESS = %q\n%s", kv["PROGRESS"], out)
			}
			for _, k := range []string{"ENQUEUED", "RUN AT", "STARTED", "FINISHED"} {
				if _, err := time.Parse("2006-01-02T15:04:05.000Z", kv[k]); err != nil {
					t.Errorf("show %s = %q: %v", k, kv[k], err)
				}
			}

			// show -json.
			var j map[string]any
			decode(t, mustCLI(t, env, cmd("show", "-json", "emails", f.done)...), &j)
			checkKeys(t, "show", j, "id", "queue", "kind", "state", "priority", "attempt", "max_attempts", "snoozes",
				"payload", "progress", "output", "last_error", "unique_key", "metadata", "enqueued_at", "run_at", "started_at", "finished_at")
			if j["id"] != f.done || j["state"] != "done" || j["attempt"] != 1.0 || j["max_attempts"] != 10.0 || j["last_error"] != "" {
				t.Errorf("show -json = %v", j)
			}
			if md, _ := j["metadata"].(map[string]any); len(md) != 2 || md["tenant"] != "acme" || md["note"] != "a b" {
				t.Errorf("show -json metadata = %v", j["metadata"])
			}
			if out, _ := j["output"].(map[string]any); out["sent"] != true {
				t.Errorf("show -json output = %v, want {sent: true}", j["output"])
			}
			if p, _ := j["payload"].(map[string]any); p["to"] != "c" {
				t.Errorf("show -json payload = %v", j["payload"])
			}
			p, _ := j["progress"].(map[string]any)
			checkKeys(t, "show progress", p, "percent", "message", "updated_at")
			if p["percent"] != 40.0 || p["message"] != "half\tway" {
				t.Errorf("show -json progress = %v", p)
			}
			for _, k := range []string{"enqueued_at", "started_at", "finished_at"} {
				if s, _ := j[k].(string); s == "" {
					t.Errorf("show -json %s = %v, want a time", k, j[k])
				} else if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
					t.Errorf("show -json %s: %v", k, err)
				}
			}

			// show: a pending job has no progress, output or finish time.
			decode(t, mustCLI(t, env, cmd("show", "-json", "emails", f.pending)...), &j)
			if j["state"] != "pending" || j["priority"] != "high" || j["progress"] != nil || j["output"] != nil || j["metadata"] != nil || j["finished_at"] != nil || j["started_at"] != nil {
				t.Errorf("show -json pending = %v", j)
			}
			kv = keyValues(t, mustCLI(t, env, cmd("show", "emails", f.pending)...))
			if kv["PROGRESS"] != "-" || kv["OUTPUT"] != "-" || kv["METADATA"] != "-" || kv["FINISHED"] != "-" || kv["STATE"] != "pending" {
				t.Errorf("show pending = %v", kv)
			}

			// dead: flags after the argument.
			out = mustCLI(t, env, cmd("dead", "emails", "-limit", "5")...)
			t.Logf("dead:\n%s", out)
			rows = checkTable(t, out, "ID", "KIND", "ATTEMPT", "FINISHED", "LAST ERROR")
			if len(rows) != 1 || rows[0][0] != f.dead || rows[0][1] != "send" || rows[0][2] != "1/3" || rows[0][4] != "smtp: 550 mailbox unavailable" {
				t.Errorf("dead = %q\n%s", rows, out)
			}
			var dead []map[string]any
			decode(t, mustCLI(t, env, cmd("dead", "-json", "emails")...), &dead)
			if len(dead) != 1 || dead[0]["id"] != f.dead || dead[0]["state"] != "dead" || dead[0]["last_error"] != "smtp: 550\nmailbox unavailable" {
				t.Errorf("dead -json = %v", dead)
			}
			if out := mustCLI(t, env, cmd("dead", "reports")...); out != "no dead jobs in queue reports\n" {
				t.Errorf("dead reports = %q", out)
			}
			if out := mustCLI(t, env, cmd("dead", "-json", "reports")...); strings.TrimSpace(out) != "[]" {
				t.Errorf("dead -json reports = %q, want []", out)
			}

			// requeue: the dead job is pending again; twice is an error.
			if out := mustCLI(t, env, cmd("requeue", "emails", f.dead)...); out != "requeued job "+f.dead+" in queue emails\n" {
				t.Errorf("requeue = %q", out)
			}
			decode(t, mustCLI(t, env, cmd("show", "-json", "emails", f.dead)...), &j)
			if j["state"] != "pending" || j["attempt"] != 0.0 {
				t.Errorf("after requeue: state %v attempt %v, want pending 0", j["state"], j["attempt"])
			}
			code, out, errs = cli(t, env, cmd("requeue", "emails", f.dead)...)
			if code != exitError || out != "" || !strings.HasPrefix(errs, "scalekit queue requeue: no dead or cancelled job "+f.dead+" in queue emails (requeue takes dead and cancelled jobs only") {
				t.Errorf("requeue of a pending job: exit %d, stdout %q, stderr %q", code, out, errs)
			}

			// cancel: the pending job is cancelled (and counted), requeue runs
			// it again; a finished job cannot be cancelled (exit 1).
			if out := mustCLI(t, env, cmd("cancel", "emails", f.dead)...); out != "cancelled job "+f.dead+" in queue emails\n" {
				t.Errorf("cancel = %q", out)
			}
			decode(t, mustCLI(t, env, cmd("show", "-json", "emails", f.dead)...), &j)
			if j["state"] != "cancelled" {
				t.Errorf("after cancel: state %v, want cancelled", j["state"])
			}
			var cs []map[string]any
			decode(t, mustCLI(t, env, cmd("stats", "-json", "emails")...), &cs)
			if len(cs) != 1 || cs[0]["cancelled"] != 1.0 || cs[0]["pending"] != 1.0 {
				t.Errorf("stats after cancel = %v, want 1 cancelled and 1 pending", cs)
			}
			var cd map[string]any
			decode(t, mustCLI(t, env, cmd("requeue", "-json", "emails", f.dead)...), &cd)
			if cd["action"] != "requeued" {
				t.Errorf("requeue of a cancelled job = %v", cd)
			}
			code, out, errs = cli(t, env, cmd("cancel", "emails", f.done)...)
			if code != exitError || out != "" || !strings.Contains(errs, "already finished") {
				t.Errorf("cancel of a done job: exit %d, stdout %q, stderr %q", code, out, errs)
			}
			code, _, errs = cli(t, env, cmd("cancel", "emails", "nope")...)
			if code != exitError || !strings.HasPrefix(errs, "scalekit queue cancel: job nope not found in queue emails") {
				t.Errorf("cancel of a missing job: exit %d, stderr %q", code, errs)
			}

			// pause and resume: the mark shows in stats.
			if out := mustCLI(t, env, cmd("pause", "emails")...); out != "paused queue emails\n" {
				t.Errorf("pause = %q", out)
			}
			decode(t, mustCLI(t, env, cmd("stats", "-json", "emails")...), &cs)
			if cs[0]["paused"] != true {
				t.Errorf("stats after pause: paused %v", cs[0]["paused"])
			}
			var pr map[string]any
			decode(t, mustCLI(t, env, cmd("resume", "-json", "emails")...), &pr)
			checkKeys(t, "resume", pr, "queue", "action")
			if pr["queue"] != "emails" || pr["action"] != "resumed" {
				t.Errorf("resume -json = %v", pr)
			}
			decode(t, mustCLI(t, env, cmd("stats", "-json", "emails")...), &cs)
			if cs[0]["paused"] != false {
				t.Errorf("stats after resume: paused %v", cs[0]["paused"])
			}

			// delete, then show is "not found" (exit 1).
			if out := mustCLI(t, env, cmd("delete", "emails", f.pending)...); out != "deleted job "+f.pending+" in queue emails\n" {
				t.Errorf("delete = %q", out)
			}
			var d map[string]any
			decode(t, mustCLI(t, env, cmd("delete", "-json", "emails", f.scheduled)...), &d)
			checkKeys(t, "delete", d, "queue", "id", "action")
			if d["queue"] != "emails" || d["id"] != f.scheduled || d["action"] != "deleted" {
				t.Errorf("delete -json = %v", d)
			}
			for _, c := range [][]string{cmd("show", "emails", f.pending), cmd("delete", "emails", f.pending), cmd("show", "-json", "emails", "nope")} {
				code, out, errs := cli(t, env, c...)
				id := c[len(c)-1]
				if code != exitError || out != "" || !strings.HasPrefix(errs, "scalekit queue "+c[1]+": job "+id+" not found in queue emails") {
					t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1 and job %s not found", strings.Join(c, " "), code, out, errs, id)
				}
			}

			rows = checkTable(t, mustCLI(t, env, cmd("stats", "emails")...), "QUEUE", "PENDING", "SCHEDULED", "ACTIVE", "RETRY", "DEAD", "CANCELLED", "DONE", "OLDEST PENDING", "PAUSED")
			if got, want := rows[0], []string{"emails", "1", "0", "0", "0", "0", "0", "1", rows[0][8], "no"}; !slices.Equal(got, want) || rows[0][8] == "-" {
				t.Errorf("stats at the end = %q, want %q", got, want)
			}
		})
	}
}

// TestClusterFlag reaches a cluster through one address and -cluster.
func TestClusterFlag(t *testing.T) {
	c := testinfra.RedisCluster(t)
	prefix := c.Prefix + "queue"
	b, err := queueredis.New(queueredis.Options{Client: c.Client, Prefix: prefix, Timeout: testinfra.CallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, b)
	var stats []queueStats
	// The three queues hash to different slots: one lives on another master.
	decode(t, mustCLI(t, nil, "queue", "stats", "-cluster", "-redis", "redis://"+c.Server.Addrs()[0], "-prefix", prefix, "-json", "emails", "reports", "other"), &stats)
	if len(stats) != 3 || stats[0].Done != 1 || stats[1].Pending != 1 || stats[2] != (queueStats{Queue: "other"}) {
		t.Errorf("stats = %+v", stats)
	}
}

func TestPostgresNotMigrated(t *testing.T) {
	pg := testinfra.Postgres(t)
	code, _, errs := cli(t, map[string]string{"DATABASE_URL": pg.PrimaryURL}, "queue", "stats", "-prefix", "nosuch", "emails")
	if code != exitError || !strings.Contains(errs, "the queue tables (nosuch_jobs) do not exist") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

// TestServerDown: a stopped or hung server fails the command with a clear
// message within -timeout, never a hang.
func TestServerDown(t *testing.T) {
	r := testinfra.Redis(t)
	env := map[string]string{"REDIS_URL": r.Server.URL()}

	t.Run("redis stopped", func(t *testing.T) {
		r.Stop()
		defer r.Start()
		start := time.Now()
		code, out, errs := cli(t, env, "queue", "stats", "-timeout", "2s", "emails")
		if code != exitError || out != "" || !strings.Contains(errs, "scalekit queue stats: Redis: queue emails: ") || !strings.Contains(errs, "refused") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("took %v with -timeout 2s", d)
		}
		code, out, errs = cli(t, env, "queue", "stats", "-timeout", "2s")
		if code != exitError || out != "" || !strings.Contains(errs, "scalekit queue stats: Redis: listing the queues: ") {
			t.Errorf("stats of every queue: exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})
	t.Run("redis paused", func(t *testing.T) {
		r.Pause()
		defer r.Resume()
		start := time.Now()
		code, _, errs := cli(t, env, "queue", "show", "-timeout", "1s", "emails", "x")
		if code != exitError || !strings.Contains(errs, "Redis did not answer within 1s (-timeout)") {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
		code, _, errs = cli(t, env, "queue", "list", "-timeout", "1s", "emails")
		if code != exitError || !strings.Contains(errs, "Redis did not answer within 1s (-timeout)") {
			t.Errorf("list: exit %d, stderr %q", code, errs)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v with -timeout 1s", d)
		}
	})
	t.Run("postgres unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		start := time.Now()
		code, _, errs := cli(t, nil, "queue", "dead", "-timeout", "2s", "-database", "postgres://u:secret@"+addr+"/db", "emails")
		if code != exitError || !strings.Contains(errs, "scalekit queue dead: PostgreSQL: ") || strings.Contains(errs, "secret") {
			t.Errorf("exit %d, stderr %q", code, errs)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("took %v with -timeout 2s", d)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	redis := map[string]string{"REDIS_URL": "redis://127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want []string // in stderr
	}{
		{"no command", nil, nil, []string{"usage: scalekit <command>"}},
		{"unknown command", nil, []string{"jobs"}, []string{`unknown command "jobs"`, "queue"}},
		{"no queue command", nil, []string{"queue"}, []string{"usage: scalekit queue <command>", "stats", "show", "dead", "requeue", "delete"}},
		{"unknown queue command", nil, []string{"queue", "purge", "q", "1"}, []string{`unknown command "purge"`, "requeue", "cancel", "pause", "resume"}},
		{"flag before the command", nil, []string{"queue", "-json", "stats", "q"}, []string{`flags come after the command; unknown command "-json"`}},
		{"unknown flag", redis, []string{"queue", "dead", "emails", "-limt", "5"}, []string{"scalekit queue dead: flag provided but not defined: -limt", "usage: scalekit queue dead [flags] <queue>", "-limit"}},
		{"bad flag value", redis, []string{"queue", "dead", "-limit", "x", "emails"}, []string{`invalid value "x" for flag -limit`}},
		{"limit out of range", redis, []string{"queue", "dead", "-limit", "0", "emails"}, []string{"-limit 0: must be 1 to 1000"}},
		{"missing id", redis, []string{"queue", "show", "emails"}, []string{"scalekit queue show: missing <id>", "usage: scalekit queue show [flags] <queue> <id>"}},
		{"missing queue", redis, []string{"queue", "list"}, []string{"missing <queue>"}},
		{"list limit out of range", redis, []string{"queue", "list", "emails", "-limit", "1001"}, []string{"-limit 1001: must be 1 to 1000"}},
		{"list bad state", redis, []string{"queue", "list", "emails", "-state", "running"}, []string{`-state "running": must be one of pending, scheduled, active, retry, done, dead, cancelled`}},
		{"list bad kind", redis, []string{"queue", "list", "emails", "-kind", "a b"}, []string{`-kind "a b": must be 1 to 100 letters`}},
		{"extra argument", redis, []string{"queue", "delete", "emails", "1", "2"}, []string{`unexpected argument "2" (takes <queue> <id>)`}},
		{"bad queue name", redis, []string{"queue", "stats", "a b"}, []string{`queue "a b": must be 1 to 100 letters`}},
		{"bad timeout", redis, []string{"queue", "stats", "-timeout", "0s", "q"}, []string{"-timeout 0s: must be > 0"}},
		{"no backend", nil, []string{"queue", "stats", "q"}, []string{"no backend: set REDIS_URL or DATABASE_URL, or pass -redis URL or -database URL"}},
		{"two variables", map[string]string{"REDIS_URL": "redis://x", "DATABASE_URL": "postgres://x"}, []string{"queue", "stats", "q"}, []string{"both REDIS_URL and DATABASE_URL are set: choose with -backend redis or -backend postgres"}},
		{"two flags", nil, []string{"queue", "stats", "-redis", "redis://x", "-database", "postgres://x", "q"}, []string{"-redis and -database both given"}},
		{"bad backend", redis, []string{"queue", "stats", "-backend", "mysql", "q"}, []string{`-backend "mysql": must be redis or postgres`}},
		{"backend not set", redis, []string{"queue", "stats", "-backend", "postgres", "q"}, []string{"-backend postgres: DATABASE_URL is not set"}},
		{"bad redis url", nil, []string{"queue", "stats", "-redis", "http://u:secret@x", "q"}, []string{"Redis URL: ", "invalid URL scheme"}},
		{"redis address without a scheme", map[string]string{"REDIS_URL": "127.0.0.1:6379"}, []string{"queue", "stats", "q"}, []string{"Redis URL: want redis://[user:password@]host:port[/db]"}},
		{"cluster on postgres", nil, []string{"queue", "stats", "-cluster", "-database", "postgres://x/y", "q"}, []string{"-cluster is for Redis"}},
		{"bad prefix", redis, []string{"queue", "stats", "-prefix", "a{b}", "q"}, []string{"Options.Prefix"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := cli(t, tc.env, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errs)
				}
			}
			if strings.Contains(errs, "secret") {
				t.Errorf("stderr shows the password:\n%s", errs)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"queue", "-h"}, {"queue", "help"}, {"queue", "dead", "-h"}} {
		code, out, errs := cli(t, nil, args...)
		if code != exitOK || errs != "" || !strings.Contains(out, "usage: scalekit") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	_, out, _ := cli(t, nil, "queue", "-h")
	for _, c := range queueCommands {
		if !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("queue -h does not list %s:\n%s", c.name, out)
		}
	}
}

func TestClusterURL(t *testing.T) {
	for _, tc := range []struct {
		in, out string
		several bool
	}{
		{"redis://h1:7000/0", "redis://h1:7000/0", false},
		{"redis://h1:7000?addr=h2:7001", "redis://h1:7000?addr=h2:7001", true},
		{"redis://h1:7000,h2:7001,h3:7002", "redis://h1:7000?addr=h2%3A7001&addr=h3%3A7002", true},
		{"rediss://u:p@h1:7000,h2:7001/?dial_timeout=3s", "rediss://u:p@h1:7000/?addr=h2%3A7001&dial_timeout=3s", true},
	} {
		out, several, err := clusterURL(tc.in)
		if err != nil || out != tc.out || several != tc.several {
			t.Errorf("clusterURL(%q) = %q, %v, %v; want %q, %v", tc.in, out, several, err, tc.out, tc.several)
		}
	}
	if _, _, err := clusterURL("redis://h1:7000,,h2:7001"); err == nil {
		t.Error("an empty host passed")
	}
}

// checkTable checks that out is an aligned table with these column
// headers (each column starting at the same offset on every line) and
// returns its rows split into cells.
func checkTable(t *testing.T, out string, header ...string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var starts []int
	at := 0
	for i, h := range header {
		j := strings.Index(lines[0][at:], h)
		if j < 0 || (i == 0 && j != 0) {
			t.Fatalf("header %q: no column %q in order:\n%s", lines[0], h, out)
		}
		starts = append(starts, at+j)
		at += j + len(h)
	}
	if strings.TrimSpace(lines[0][at:]) != "" {
		t.Fatalf("header %q: more columns than %q", lines[0], header)
	}
	var rows [][]string
	for _, l := range lines[1:] {
		var row []string
		for i, s := range starts {
			if s >= len(l) || l[s] == ' ' || (s > 0 && l[s-1] != ' ') {
				t.Fatalf("line %q: column %q does not start at offset %d:\n%s", l, header[i], s, out)
			}
			end := len(l)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			row = append(row, strings.TrimSpace(l[s:end]))
		}
		rows = append(rows, row)
	}
	return rows
}

// keyValues reads show's two-column table.
func keyValues(t *testing.T, out string) map[string]string {
	t.Helper()
	kv := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	rest := strings.TrimPrefix(lines[0], "ID")
	col := len(lines[0]) - len(strings.TrimLeft(rest, " "))
	for _, l := range lines {
		if len(l) <= col || l[col-1] != ' ' {
			t.Fatalf("line %q: no value at offset %d:\n%s", l, col, out)
		}
		kv[strings.TrimSpace(l[:col])] = l[col:]
	}
	return kv
}

func decode(t *testing.T, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
}

// checkKeys checks that the JSON object has exactly these keys: the
// documented, stable field names.
func checkKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	var got []string
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Errorf("%s -json keys = %q, want %q", what, got, keys)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		d       time.Duration
		waiting bool
		want    string
	}{
		{0, false, "-"}, {0, true, "<1ms"}, {250 * time.Millisecond, true, "250ms"}, {1500 * time.Millisecond, true, "2s"}, {90 * time.Minute, true, "1h30m0s"},
	} {
		if got := age(tc.d, tc.waiting); got != tc.want {
			t.Errorf("age(%v, %v) = %q, want %q", tc.d, tc.waiting, got, tc.want)
		}
	}
	if got := oneLine("a\n\tb  cé"+strings.Repeat("x", 100), 10); got != "a b céx..." {
		t.Errorf("oneLine = %q", got)
	}
	for in, want := range map[string]string{"": "null", `{ "a": 1 }`: `{"a":1}`, "not json": `"not json"`} {
		if got, err := json.Marshal(rawJSON(in)); err != nil || string(got) != want {
			t.Errorf("rawJSON(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
}
