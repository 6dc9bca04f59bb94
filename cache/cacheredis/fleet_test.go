package cacheredis

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// The fleet test runs this test binary again as child processes: with
// fleetEnv set, TestMain runs fleetChild instead of the tests.
const (
	fleetEnv      = "CACHEREDIS_FLEET_CHILD" // the Redis address
	fleetUntilEnv = "CACHEREDIS_FLEET_UNTIL" // Unix ns to stop at
	fleetKeyEnv   = "CACHEREDIS_FLEET_KEY"   // the hot key; loads are RPUSHed at <key>:loads
	fleetTTL      = time.Second
	fleetLoad     = 50 * time.Millisecond
)

// fleetChild is one instance of the fleet: a cache with default options
// (TTL 1s) whose goroutines hammer one key until the deadline; every
// load appends its start time to a list in Redis.
func fleetChild() int {
	until, err := strconv.ParseInt(os.Getenv(fleetUntilEnv), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet child:", err)
		return 2
	}
	key := os.Getenv(fleetKeyEnv)
	client := redis.NewClient(&redis.Options{Addr: os.Getenv(fleetEnv), ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := New(Options{Client: client, Prefix: key, Timeout: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet child:", err)
		return 2
	}
	c, err := cache.New[string](cache.Options{Store: store, TTL: fleetTTL})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet child:", err)
		return 2
	}
	defer c.Close()
	ctx := context.Background()
	load := func(ctx context.Context, k string) (string, error) {
		if err := client.RPush(ctx, key+":loads", time.Now().UnixNano()).Err(); err != nil {
			return "", err
		}
		time.Sleep(fleetLoad)
		return "v", nil
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for time.Now().UnixNano() < until {
				_, _ = c.Get(ctx, key, load)
			}
		})
	}
	wg.Wait()
	return 0
}

// Several OS processes with default options hammer one hot key on one
// Redis: the fleet loads it about once per TTL (at most 1.1 times), not
// once per TTL per process nor twice as XFetch's early refresh, driven by
// the fleet's traffic, used to fire ~0.4 TTL early.
func TestFleetLoadsHotKeyOncePerTTL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes for 6s")
	}
	r := testinfra.Redis(t)
	const procs, run = 4, 6 * time.Second
	key := "fleet" + strconv.FormatInt(time.Now().UnixNano(), 36)
	until := time.Now().Add(run).UnixNano()
	var wg sync.WaitGroup
	errs := make([]error, procs)
	for i := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fleetEnv+"="+r.Addr(), fleetUntilEnv+"="+strconv.FormatInt(until, 10), fleetKeyEnv+"="+key)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { errs[i] = cmd.Wait() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
	}
	raw, err := r.Client.LRange(context.Background(), key+":loads", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	starts := make([]int64, len(raw))
	for i, s := range raw {
		if starts[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(starts)
	if len(starts) < 3 {
		t.Fatalf("%d loads in %v on %d processes: the key was not hammered", len(starts), run, procs)
	}
	span := time.Duration(starts[len(starts)-1] - starts[0])
	perTTL := float64(len(starts)-1) * float64(fleetTTL) / float64(span)
	t.Logf("%d processes, default options, TTL %v, loader %v: %d loads, %.2f loads per TTL fleet-wide (mean interval %v)",
		procs, fleetTTL, fleetLoad, len(starts), perTTL, (span / time.Duration(len(starts)-1)).Round(time.Millisecond))
	if perTTL > 1.1 {
		t.Fatalf("%.2f loads per TTL across the fleet, want at most 1.1", perTTL)
	}
}
