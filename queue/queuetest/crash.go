package queuetest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

// CrashEnv is the environment variable that turns a test binary into the
// crash test's worker process. Its value is what the child needs to reach
// the backend (a URL or an address). A backend package's TestMain runs
// the worker when it is set:
//
//	if v := os.Getenv(queuetest.CrashEnv); v != "" {
//		os.Exit(queuetest.CrashWorker(backendFor(v)))
//	}
const CrashEnv = "SCALEKIT_QUEUETEST_CRASH_WORKER"

// crashQueue is the queue of the crash test.
const crashQueue = "crash"

func crashWorkerOptions(b queue.Backend) queue.WorkerOptions {
	return queue.WorkerOptions{Backend: b, FetchWait: 100 * time.Millisecond,
		Queues: map[string]queue.Options{crashQueue: {Concurrency: 8, Lease: time.Second}}}
}

// CrashWorker is the child process of RunCrash: it consumes the crash
// queue slowly (200ms a job, 8 at once, 1s leases) until it is killed. It
// returns an exit code only if it cannot start.
func CrashWorker(b queue.Backend) int {
	o := crashWorkerOptions(b)
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	w, err := queue.NewWorker(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	queue.Handle(w, "work", func(ctx context.Context, j *queue.Job[int]) error {
		time.Sleep(200 * time.Millisecond)
		return nil
	})
	w.Start(context.Background())
	fmt.Println("worker started")
	select {} // until SIGKILL
}

// RunCrash enqueues 100 jobs on b, starts the test binary again as a
// worker process (CrashEnv=target), SIGKILLs it once it holds at least 8
// leases and has finished a job, then runs a second worker in this
// process: every enqueued id must end done, none missing. held, when not
// nil, reads the ids the backend shows leased right after the kill; each
// must then run again in the second worker as attempt 2 or later. (Leases
// held at the kill belong to running handlers and to finished ones whose
// outcome had not reached the backend, so they can outnumber the
// concurrency.)
func RunCrash(t *testing.T, b queue.Backend, target string, held func(ctx context.Context) ([]string, error)) {
	ctx := context.Background()
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	const n = 100
	ids := make([]string, n)
	for i := range ids {
		id, err := c.Enqueue(ctx, crashQueue, "work", i, queue.EnqueueOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), CrashEnv+"="+target)
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
	if n, _ := out.Read(buf); !strings.Contains(string(buf[:n]), "worker started") {
		t.Fatalf("child: %q", buf[:n])
	}
	waitFor(t, "the child holding at least 8 leases, one job done", func() bool {
		cnt, _ := c.Counts(ctx, crashQueue)
		return cnt.Active >= 8 && cnt.Done > 0
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	// A statement the killed worker had already sent (a batched completion
	// on PostgreSQL) still runs on the server: let those land before
	// reading what it held. The 1s leases are still running then.
	time.Sleep(300 * time.Millisecond)
	before, _ := c.Counts(ctx, crashQueue)
	var heldIDs []string
	if held != nil {
		var err error
		if heldIDs, err = held(ctx); err != nil || int64(len(heldIDs)) != before.Active {
			t.Fatalf("leased at the kill: %v %v, counts %+v", heldIDs, err, before)
		}
	}
	t.Logf("killed the worker holding %d leases (%d jobs done)", before.Active, before.Done)

	var mu sync.Mutex
	ran := map[string]int{}
	redelivered := map[string]int{} // id -> attempt
	w, _ := queue.NewWorker(crashWorkerOptions(b))
	queue.Handle(w, "work", func(ctx context.Context, j *queue.Job[int]) error {
		mu.Lock()
		ran[j.ID]++
		if j.Attempt > 1 {
			redelivered[j.ID] = j.Attempt
		}
		mu.Unlock()
		return nil
	})
	w.Start(ctx)
	defer w.Close()
	waitFor(t, "every job done", func() bool { cnt, _ := c.Counts(ctx, crashQueue); return cnt.Done == n })
	missing := 0
	for _, id := range ids {
		if m, err := c.Job(ctx, crashQueue, id); err != nil || m.State != queue.Done {
			missing++
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, id := range heldIDs {
		if ran[id] == 0 || redelivered[id] < 2 {
			t.Errorf("job %s, in flight in the killed worker, ran %d times in the second (attempt %d), want once as a redelivery", id, ran[id], redelivered[id])
		}
	}
	t.Logf("%d jobs enqueued, %d done, %d missing; the killed worker completed %d, the second ran %d (%d of them redelivered after the kill)",
		n, n-missing, missing, before.Done, w.Stats()[0].Processed, len(redelivered))
	if missing != 0 {
		t.Fatalf("%d jobs missing", missing)
	}
	if before.Done+int64(len(ran)) < n {
		t.Fatalf("%d done by the killed worker + %d by the second < %d", before.Done, len(ran), n)
	}
}
