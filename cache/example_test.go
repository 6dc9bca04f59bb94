package cache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/cache"
)

func Example() {
	users, err := cache.New[string](cache.Options{TTL: time.Minute})
	if err != nil {
		panic(err)
	}
	defer users.Close()
	loads := 0
	loadUser := func(ctx context.Context, id string) (string, error) {
		loads++ // SELECT name FROM users WHERE id = $1
		if id == "404" {
			return "", cache.ErrNotFound
		}
		return "user " + id, nil
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		name, _ := users.Get(ctx, "42", loadUser)
		fmt.Println(name)
	}
	_, err = users.Get(ctx, "404", loadUser)
	_, err = users.Get(ctx, "404", loadUser) // remembered: no second load
	fmt.Println(errors.Is(err, cache.ErrNotFound), "loads:", loads)
	// Output:
	// user 42
	// user 42
	// user 42
	// true loads: 2
}

// Two instances of a service share an L2: a key loads once for both, and
// invalidating a namespace on one retires its keys on both.
func Example_sharedStore() {
	store := cache.NewMemoryStore(cache.MemoryStoreOptions{}) // cacheredis.New(...) in production
	newInstance := func() *cache.Cache[string] {
		c, err := cache.New[string](cache.Options{Store: store, TTL: time.Minute})
		if err != nil {
			panic(err)
		}
		return c
	}
	a, b := newInstance(), newInstance()
	defer a.Close()
	defer b.Close()

	generation := "v1"
	loads := 0
	loadUser := func(ctx context.Context, id string) (string, error) {
		loads++
		return "user " + id + " " + generation, nil
	}
	ctx := context.Background()
	usersA, usersB := a.Namespace("user"), b.Namespace("user")
	x, _ := usersA.Get(ctx, "42", loadUser)
	y, _ := usersB.Get(ctx, "42", loadUser) // from the shared store
	fmt.Println(x, "|", y, "| loads:", loads)

	generation = "v2"
	_ = usersA.Invalidate(ctx) // every "user" key, on every instance
	y, _ = usersB.Get(ctx, "42", loadUser)
	fmt.Println(y, "| loads:", loads)

	many, _ := a.GetMany(ctx, []string{"p1", "p2", "gone"}, func(ctx context.Context, keys []string) (map[string]string, error) {
		loads++ // one SELECT ... WHERE id = ANY($1)
		return map[string]string{"p1": "post 1", "p2": "post 2"}, nil
	})
	fmt.Println(len(many), many["p1"], many["p2"], "| loads:", loads)
	// Output:
	// user 42 v1 | user 42 v1 | loads: 1
	// user 42 v2 | loads: 2
	// 2 post 1 post 2 | loads: 3
}

// GetManyInto answers a page of keys into slices the caller reuses: no
// map is built, and a page all in the L1 allocates nothing.
func ExampleCache_GetManyInto() {
	posts, err := cache.New[string](cache.Options{TTL: time.Minute})
	if err != nil {
		panic(err)
	}
	defer posts.Close()
	loadPosts := func(ctx context.Context, ids []string) (map[string]string, error) {
		// SELECT id, title FROM posts WHERE id = ANY($1)
		return map[string]string{"p1": "post 1", "p2": "post 2"}, nil
	}
	ids := []string{"p1", "p2", "gone"}
	titles, found := make([]string, len(ids)), make([]bool, len(ids))
	if err := posts.GetManyInto(context.Background(), ids, titles, found, loadPosts); err != nil {
		panic(err)
	}
	for i, id := range ids {
		fmt.Printf("%s: %q %v\n", id, titles[i], found[i])
	}
	// Output:
	// p1: "post 1" true
	// p2: "post 2" true
	// gone: "" false
}
