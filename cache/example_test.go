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
