package cacheredis_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cacheredis"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// redisAddr starts (once) a throwaway redis-server for the example; in a
// service this is your Redis's address.
func redisAddr() string {
	addr, err := testinfra.SharedRedis()
	if err != nil {
		panic(err)
	}
	return addr
}

type User struct {
	ID   int
	Name string
}

func Example() {
	client := redis.NewClient(&redis.Options{Addr: redisAddr(), ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := cacheredis.New(cacheredis.Options{Client: client, Prefix: "example"})
	if err != nil {
		panic(err)
	}
	users, err := cache.New[User](cache.Options{Store: store, TTL: 5 * time.Minute, MaxConcurrentLoads: 32})
	if err != nil {
		panic(err)
	}
	defer users.Close()

	loadUser := func(ctx context.Context, id string) (User, error) {
		fmt.Println("loading user", id) // SELECT ... FROM users WHERE id = $1
		return User{ID: 42, Name: "Ada"}, nil
	}
	ctx := context.Background()
	u, err := users.Namespace("user").Get(ctx, "42", loadUser)
	fmt.Println(u, err)
	u, err = users.Namespace("user").Get(ctx, "42", loadUser) // L1 hit
	fmt.Println(u, err)
	// Output:
	// loading user 42
	// {42 Ada} <nil>
	// {42 Ada} <nil>
}

// With Tracking, Redis tells every instance when a key it may hold
// changes, even when another program writes it: here a plain client
// deletes the cached key and the next Get loads it again instead of
// serving the L1 copy.
func ExampleOptions_tracking() {
	client := redis.NewClient(&redis.Options{Addr: redisAddr(), ContextTimeoutEnabled: true})
	defer client.Close()
	store, err := cacheredis.New(cacheredis.Options{Client: client, Prefix: "example-tracking", Tracking: true})
	if err != nil {
		panic(err)
	}
	users, err := cache.New[User](cache.Options{Store: store, TTL: time.Hour}) // L1 copies live until Redis invalidates them
	if err != nil {
		panic(err)
	}
	defer users.Close()
	loads := 0
	loadUser := func(ctx context.Context, id string) (User, error) {
		loads++
		return User{ID: 42, Name: "Ada"}, nil
	}
	ctx := context.Background()
	if _, err := users.Get(ctx, "42", loadUser); err != nil {
		panic(err)
	}
	other := redis.NewClient(&redis.Options{Addr: redisAddr()}) // not scalekit
	defer other.Close()
	other.Del(ctx, "{example-tracking:42}")
	for loads < 2 { // the invalidation arrives within a millisecond
		if _, err := users.Get(ctx, "42", loadUser); err != nil {
			panic(err)
		}
	}
	fmt.Println("loaded", loads, "times")
	// Output:
	// loaded 2 times
}
