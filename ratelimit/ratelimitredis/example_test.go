package ratelimitredis_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimitredis"
)

// redisAddr starts (once) a throwaway redis-server for the examples; in a
// service this is your Redis's address.
func redisAddr() string {
	addr, err := testinfra.SharedRedis()
	if err != nil {
		panic(err)
	}
	return addr
}

func Example() {
	client := redis.NewClient(&redis.Options{Addr: redisAddr(), ContextTimeoutEnabled: true})
	defer client.Close()

	lim, err := ratelimitredis.New(ratelimitredis.Options{
		Client: client,
		Prefix: "example",
		Limits: ratelimit.Policy{
			{Name: "burst", Rate: 10, Burst: 3},
			{Name: "hourly", Rate: 1000, Period: time.Hour},
		},
	})
	if err != nil {
		panic(err)
	}
	for i := 0; i < 4; i++ {
		d, err := lim.Allow(context.Background(), "user-42")
		if err != nil {
			panic(err)
		}
		fmt.Printf("allowed=%v remaining=%d limit=%s retry-after=%v\n", d.Allowed, d.Remaining, d.Limit.Name, d.RetryAfter.Round(100*time.Millisecond))
	}
	// Output:
	// allowed=true remaining=2 limit=burst retry-after=0s
	// allowed=true remaining=1 limit=burst retry-after=0s
	// allowed=true remaining=0 limit=burst retry-after=0s
	// allowed=false remaining=0 limit=burst retry-after=100ms
}

func ExampleConcurrency() {
	client := redis.NewClient(&redis.Options{Addr: redisAddr(), ContextTimeoutEnabled: true})
	defer client.Close()

	// At most 2 exports per tenant at once, across every instance.
	exports, err := ratelimitredis.NewConcurrency(ratelimitredis.ConcurrencyOptions{Client: client, Prefix: "example", Limit: 2})
	if err != nil {
		panic(err)
	}
	defer exports.Close()
	ctx := context.Background()
	r1, _ := exports.Acquire(ctx, "tenant-7")
	r2, _ := exports.Acquire(ctx, "tenant-7")
	_, err = exports.Acquire(ctx, "tenant-7")
	fmt.Println("third:", err != nil)
	r1()
	r3, err := exports.Acquire(ctx, "tenant-7")
	fmt.Println("after a release:", err)
	r2()
	r3()
	// Output:
	// third: true
	// after a release: <nil>
}

func ExampleLimiter_AllowMany() {
	client := redis.NewClient(&redis.Options{Addr: redisAddr(), ContextTimeoutEnabled: true})
	defer client.Close()

	lim, err := ratelimitredis.New(ratelimitredis.Options{
		Client: client,
		Prefix: "example-many",
		Limits: ratelimit.Policy{{Rate: 10, Burst: 2}},
	})
	if err != nil {
		panic(err)
	}
	// Three keys' decisions in one round trip; "a" is decided twice, in order.
	ds, err := lim.AllowMany(context.Background(), []string{"a", "b", "a", "a"}, 1)
	if err != nil {
		panic(err)
	}
	for i, d := range ds {
		fmt.Printf("%d: allowed=%v remaining=%d\n", i, d.Allowed, d.Remaining)
	}
	fmt.Println("round trips:", lim.Stats().RoundTrips)
	// Output:
	// 0: allowed=true remaining=1
	// 1: allowed=true remaining=1
	// 2: allowed=true remaining=0
	// 3: allowed=false remaining=0
	// round trips: 1
}

func ExampleOptions_lease() {
	client := redis.NewClient(&redis.Options{Addr: redisAddr(), ContextTimeoutEnabled: true})
	defer client.Close()

	// Each process takes up to 10 events of a key per round trip and
	// spends them locally: over any window the fleet may admit
	// Processes x 9 events more than the limit.
	lim, err := ratelimitredis.New(ratelimitredis.Options{
		Client: client,
		Prefix: "example-lease",
		Limits: ratelimit.Policy{{Rate: 1000, Period: time.Minute}},
		Lease:  10,
	})
	if err != nil {
		panic(err)
	}
	for i := 0; i < 25; i++ {
		if _, err := lim.Allow(context.Background(), "user-42"); err != nil {
			panic(err)
		}
	}
	st := lim.Stats()
	fmt.Printf("decisions=%d round trips=%d leased=%d spent=%d\n", st.Allowed, st.RoundTrips, st.Leased, st.LeaseSpent)
	// Output:
	// decisions=25 round trips=3 leased=30 spent=25
}
