package queuetest

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/queue"
)

// FleetEnv is the environment variable that turns a test binary into one
// process of RunPeriodicFleet. Its value is what the child needs to reach
// the backend (a URL or an address). A backend package's TestMain runs
// the process when it is set:
//
//	if v := os.Getenv(queuetest.FleetEnv); v != "" {
//		os.Exit(queuetest.FleetProcess(backendFor(v)))
//	}
const FleetEnv = "SCALEKIT_QUEUETEST_FLEET_PROCESS"

// The fleet process's other settings, set by RunPeriodicFleet.
const (
	fleetLogEnv  = "SCALEKIT_QUEUETEST_FLEET_LOG"  // the file each run appends a line to
	fleetSkewEnv = "SCALEKIT_QUEUETEST_FLEET_SKEW" // the process clock's offset from the real time
	fleetQueue   = "periodic-fleet"
	fleetKind    = "tick"
	fleetEvery   = time.Second
	fleetTicks   = 10
)

// fleetSchedule is the schedule every fleet process registers.
var fleetSchedule = queue.Schedule{Name: "fleet", Every: fleetEvery, Queue: fleetQueue, Kind: fleetKind}

// FleetProcess is one process of RunPeriodicFleet: a Scheduler and a
// Worker on b, the Scheduler's clock off the real time by the skew the
// parent gave, each run of the schedule's job appending "<job id> <pid>"
// to the parent's log file. It runs until SIGTERM, then shuts both down
// gracefully and returns 0; it returns another exit code only if it cannot
// start.
func FleetProcess(b queue.Backend) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "fleet process:", err); return 1 }
	skew, err := time.ParseDuration(os.Getenv(fleetSkewEnv))
	if err != nil {
		return fail(err)
	}
	log, err := os.OpenFile(os.Getenv(fleetLogEnv), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fail(err)
	}
	defer log.Close()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: b, Schedules: []queue.Schedule{fleetSchedule},
		Clock: clock.Func(func() time.Time { return time.Now().Add(skew) }), Logger: logger})
	if err != nil {
		return fail(err)
	}
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, FetchWait: 100 * time.Millisecond, Logger: logger,
		Queues: map[string]queue.Options{fleetQueue: {Concurrency: 4, Lease: 5 * time.Second}}})
	if err != nil {
		return fail(err)
	}
	pid := strconv.Itoa(os.Getpid())
	queue.Handle(w, fleetKind, func(ctx context.Context, j *queue.Job[struct{}]) error {
		// The tick is the job's run-at time, read back from the backend,
		// so a tick enqueued twice under two ids shows as two runs.
		m, err := b.Job(ctx, j.Queue, j.ID)
		if err != nil {
			return err
		}
		// One write(2) on an O_APPEND file: the processes' lines do not
		// interleave.
		_, err = log.WriteString(strconv.FormatInt(m.RunAt.UnixMilli(), 10) + " " + j.ID + " " + pid + "\n")
		return err
	})
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	ctx := context.Background()
	if err := w.Start(ctx); err != nil {
		return fail(err)
	}
	if err := s.Start(ctx); err != nil {
		return fail(err)
	}
	fmt.Println("fleet process started")
	<-term
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		return fail(err)
	}
	if err := w.Shutdown(ctx); err != nil {
		return fail(err)
	}
	return 0
}

// fleetChild is one running FleetProcess.
type fleetChild struct {
	cmd  *exec.Cmd
	skew time.Duration
}

// startFleetChild starts the test binary again as a FleetProcess and waits
// for it to say it started.
func startFleetChild(t *testing.T, target, logPath string, skew time.Duration) *fleetChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), FleetEnv+"="+target, fleetLogEnv+"="+logPath, fleetSkewEnv+"="+skew.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if !strings.Contains(line, "fleet process started") {
		t.Fatalf("fleet process (skew %v): %q %v", skew, line, err)
	}
	return &fleetChild{cmd: cmd, skew: skew}
}

// stop ends the child gracefully (SIGTERM: it shuts its scheduler and
// worker down) and checks it exited cleanly.
func (c *fleetChild) stop(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Wait(); err != nil {
		t.Fatalf("fleet process (skew %v) did not shut down cleanly: %v", c.skew, err)
	}
}

// RunPeriodicFleet runs a periodic schedule ticking every second in three
// operating-system processes at once (the test binary started again with
// FleetEnv=target), their clocks 40ms apart, each with a Scheduler and a
// Worker on the backend b reaches. While ten ticks pass, one process is
// stopped and a fourth started (instances leaving and joining). Each of
// the ten ticks' jobs must run exactly once, and no job of the schedule
// may run twice: one enqueue per tick across the fleet, whatever the
// processes' starts, stops and clock skews. It takes about 15 seconds.
func RunPeriodicFleet(t *testing.T, b queue.Backend, target string) {
	ctx := context.Background()
	c, err := queue.NewClient(queue.ClientOptions{Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "runs.log")
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fleet := []*fleetChild{
		startFleetChild(t, target, logPath, 0),
		startFleetChild(t, target, logPath, 40*time.Millisecond),
		startFleetChild(t, target, logPath, -40*time.Millisecond),
	}
	// The ticks counted: ten, from the second whole second after every
	// process started.
	first := time.Now().Truncate(fleetEvery).Add(2 * fleetEvery)
	ids := make([]string, fleetTicks)
	for i := range ids {
		ids[i] = "periodic:" + fleetSchedule.Name + ":" + strconv.FormatInt(first.Add(time.Duration(i)*fleetEvery).UnixMilli(), 10)
	}
	done := func(id string) bool {
		m, err := c.Job(ctx, fleetQueue, id)
		return err == nil && m.State == queue.Done
	}
	// Halfway through, one process leaves and another joins.
	waitFor(t, "the 4th counted tick done", func() bool { return done(ids[3]) })
	fleet[0].stop(t)
	fleet = append(fleet[1:], startFleetChild(t, target, logPath, 20*time.Millisecond))
	for _, id := range ids {
		poll.Until(t, 30*time.Second, "tick "+id+" done", func() bool { return done(id) })
	}
	for _, ch := range fleet {
		ch.stop(t)
	}

	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[int64][]string{} // tick (unix ms) -> "<job id> by <pid>" of each run
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		tick, err := strconv.ParseInt(f[0], 10, 64)
		if len(f) != 3 || err != nil {
			t.Fatalf("run log line %q", line)
		}
		runs[tick] = append(runs[tick], f[1]+" by "+f[2])
	}
	pids := map[string]bool{}
	for i := range fleetTicks {
		tick := first.Add(time.Duration(i) * fleetEvery).UnixMilli()
		if len(runs[tick]) != 1 {
			t.Errorf("tick %d ran %d times (%v), want once", tick, len(runs[tick]), runs[tick])
		}
		for _, r := range runs[tick] {
			_, pid, _ := strings.Cut(r, " by ")
			pids[pid] = true
		}
	}
	for tick, rs := range runs {
		if d := time.UnixMilli(tick).Sub(first); len(rs) > 1 && (d < 0 || d >= fleetTicks*fleetEvery) {
			t.Errorf("tick %d (outside the ten counted) ran %d times (%v), want once", tick, len(rs), rs)
		}
	}
	t.Logf("the %d counted ticks ran in %d of the 4 processes; %d ticks ran in all", fleetTicks, len(pids), len(runs))
}
