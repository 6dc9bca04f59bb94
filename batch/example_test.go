package batch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/scalekit-go/scalekit/batch"
)

func ExampleNew() {
	fetches := 0
	users, err := batch.New(func(ctx context.Context, ids []int) (map[int]string, error) {
		fetches++ // one query: SELECT ... WHERE id = ANY($1)
		out := map[int]string{}
		for _, id := range ids {
			if id != 404 {
				out[id] = fmt.Sprintf("user-%d", id)
			}
		}
		return out, nil
	}, batch.Options{})
	if err != nil {
		panic(err)
	}

	var wg sync.WaitGroup
	names := make([]string, 5)
	for i, id := range []int{1, 2, 3, 2, 1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			names[i], _ = users.Load(context.Background(), id)
		}()
	}
	wg.Wait()
	fmt.Println(names, "in", fetches, "fetch")

	_, err = users.Load(context.Background(), 404)
	fmt.Println(errors.Is(err, batch.ErrNotFound))
	// Output:
	// [user-1 user-2 user-3 user-2 user-1] in 1 fetch
	// true
}

func ExampleWithMemo() {
	fetches := 0
	l, _ := batch.New(func(ctx context.Context, ids []int) (map[int]int, error) {
		fetches++
		out := map[int]int{}
		for _, id := range ids {
			out[id] = id * 10
		}
		return out, nil
	}, batch.Options{})

	ctx := batch.WithMemo(context.Background()) // one per request
	for i := 0; i < 3; i++ {
		v, _ := l.Load(ctx, 7)
		fmt.Println(v)
	}
	fmt.Println("fetches:", fetches)
	// Output:
	// 70
	// 70
	// 70
	// fetches: 1
}
