package ratelimitredis

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/redisx"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimittest"
)

// scriptCalls is how many EVAL and EVALSHA calls the Cluster's masters
// ran, from INFO commandstats.
func scriptCalls(t *testing.T, cc *redis.ClusterClient) int {
	t.Helper()
	ctx := context.Background()
	var total atomic.Int64 // ForEachMaster calls fn on every master at once
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			return err
		}
		for line := range strings.Lines(info) {
			if !strings.HasPrefix(line, "cmdstat_evalsha:calls=") && !strings.HasPrefix(line, "cmdstat_eval:calls=") {
				continue
			}
			v, _, _ := strings.Cut(line[strings.Index(line, "=")+1:], ",")
			n, err := strconv.Atoi(v)
			if err != nil {
				return err
			}
			total.Add(int64(n))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return int(total.Load())
}

// On a Cluster a batch is one script per master, not one per hash slot:
// 300 keys over 3 masters are 3 script calls (they were about 290, one
// per slot), with one limit (plain keys) and with two (hashes), and the
// decisions are Local's.
func TestAllowManyClusterOneScriptPerNode(t *testing.T) {
	c := testinfra.RedisCluster(t)
	ctx := context.Background()
	for pi, p := range []ratelimit.Policy{
		{{Rate: 3, Period: 10 * time.Second, Burst: 5}},
		{{Name: "fast", Rate: 7, Period: 10 * time.Second, Burst: 3}, {Name: "slow", Rate: 100, Period: time.Hour, Burst: 20}},
	} {
		clk := testclock.New()
		local, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: p, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		rl := newLimiter(t, Options{Client: c.Client, Limits: p, Clock: clk, Prefix: c.Prefix + "node"})
		base := ratelimittest.Key(t)
		keys := make([]string, 300)
		for k := range keys {
			keys[k] = base + strconv.Itoa(k)
		}
		for round := range 4 {
			before := scriptCalls(t, c.Client)
			got, err := rl.AllowMany(ctx, keys, 2)
			if err != nil {
				t.Fatal(err)
			}
			calls := scriptCalls(t, c.Client) - before
			for k, key := range keys {
				want, err := local.AllowN(ctx, key, 2)
				if err != nil {
					t.Fatal(err)
				}
				if got[k] != want {
					t.Fatalf("policy %d, round %d, key %d: Redis %+v, Local %+v", pi, round, k, got[k], want)
				}
			}
			if calls < 3 || calls > 3+1 { // +1: a NOSCRIPT answered by EVAL
				t.Fatalf("policy %d, round %d: %d script calls for 300 keys on 3 masters, want one per master", pi, round, calls)
			}
			clk.Add(time.Second)
		}
		if st := rl.Stats(); st.Errors != 0 || rl.perSlot.Load() {
			t.Fatalf("policy %d: %+v, per slot %v", pi, st, rl.perSlot.Load())
		}
	}
}

// A slot moved to another master while the limiter's client still has
// the old map: the old master refuses the moved key ("non local key")
// before deciding any of its batch, those keys are decided again by slot
// (the client follows the redirection), and every decision is Local's,
// the moved key's state included. Nothing is decided twice, nothing
// degrades.
func TestAllowManyClusterSlotMoved(t *testing.T) {
	f := testinfra.OwnRedisCluster(t)
	srv, cc := f.Server, f.Client
	ctx := context.Background()
	clk := testclock.New()
	p := ratelimit.Policy{{Rate: 1, Period: time.Hour, Burst: 3}}
	local, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: p, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	rl := newLimiter(t, Options{Client: cc, Limits: p, Clock: clk})
	keys := make([]string, 60)
	for k := range keys {
		keys[k] = "k" + strconv.Itoa(k)
	}
	check := func(round string) {
		t.Helper()
		got, err := rl.AllowMany(ctx, keys, 1)
		if err != nil {
			t.Fatal(err)
		}
		for k, key := range keys {
			want, _ := local.AllowN(ctx, key, 1)
			if got[k] != want {
				t.Fatalf("%s, key %s: Redis %+v, Local %+v", round, key, got[k], want)
			}
		}
	}
	check("before the move")
	check("before the move, again")

	// Move the last key's slot to another master, behind the limiter client's back.
	moved := rl.b.key(keys[len(keys)-1], rl.suffix) // last: its master decides its other keys first
	slot := redisx.Slot(moved)
	src, err := cc.MasterForKey(ctx, moved)
	if err != nil {
		t.Fatal(err)
	}
	var dst *redis.Client
	ids := map[*redis.Client]string{}
	var masters []*redis.Client
	for _, addr := range srv.Addrs() {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil {
			t.Fatal(err)
		}
		if role[0] != "master" {
			continue
		}
		id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		ids[c] = id
		masters = append(masters, c)
		if c.Options().Addr != src.Options().Addr && dst == nil {
			dst = c
		}
	}
	srcID, err := src.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	dstID := ids[dst]
	must := func(c *redis.Client, args ...any) {
		t.Helper()
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	must(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID)
	must(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID)
	inSlot, err := src.Do(ctx, "CLUSTER", "GETKEYSINSLOT", slot, 100).StringSlice()
	if err != nil || len(inSlot) == 0 {
		t.Fatalf("keys in slot %d: %v %v", slot, inSlot, err)
	}
	host, port, _ := strings.Cut(dst.Options().Addr, ":")
	args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
	for _, k := range inSlot {
		args = append(args, k)
	}
	must(src, args...)
	for _, m := range masters {
		must(m, "CLUSTER", "SETSLOT", slot, "NODE", dstID)
	}
	if n, err := dst.Exists(ctx, moved).Result(); err != nil || n != 1 {
		t.Fatalf("the moved key on its new master: %d %v", n, err)
	}

	clk.Add(time.Hour / 2) // half an event back for every key
	check("after the move")
	check("after the move, again")
	if st := rl.Stats(); st.Errors != 0 || st.FailOpen != 0 {
		t.Fatalf("stats %+v: a decision degraded", st)
	}
}
