package lane_test

import (
	"context"
	"fmt"

	"github.com/scalekit-go/scalekit/internal/lane"
	"github.com/scalekit-go/scalekit/queue"
)

type exComplete struct {
	ctx  context.Context
	id   string
	done chan error
}

func (c *exComplete) Context() context.Context { return c.ctx }
func (c *exComplete) Drop(err error)           { c.done <- err }

type exFetch struct {
	ctx  context.Context
	r    queue.FetchRequest
	done chan []string
}

func (f *exFetch) Context() context.Context          { return f.ctx }
func (f *exFetch) Drop(error)                        { f.done <- nil }
func (f *exFetch) FetchRequest() *queue.FetchRequest { return &f.r }

func Example() {
	ln := lane.New(lane.Config[*exComplete, *exFetch]{
		MaxCompletions: 100,
		MaxFetch:       256,
		Round: func(cs []*exComplete, f *exFetch) { // one round trip
			for _, c := range cs {
				c.done <- nil
			}
			if f != nil {
				f.done <- []string{fmt.Sprintf("%d jobs", f.r.Max)}
			}
		},
	})
	ctx := context.Background()
	c := &exComplete{ctx: ctx, id: "job-1", done: make(chan error, 1)}
	ln.Complete(c)
	rep, err := lane.Wait(ctx, c.done)
	fmt.Println(rep, err)
	f := &exFetch{ctx: ctx, r: queue.FetchRequest{Max: 1, Grow: func(free int) int { return 3 }}, done: make(chan []string, 1)}
	ln.Fetch(f)
	jobs, err := lane.Wait(ctx, f.done)
	fmt.Println(jobs, err)
	// Output:
	// <nil> <nil>
	// [4 jobs] <nil>
}
