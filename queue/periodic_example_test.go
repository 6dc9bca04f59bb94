package queue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/queue"
)

// Two instances of a service run the same schedule on one backend: each
// tick is enqueued once. A manual clock and RunDue stand in for the
// passing time and for Start's background loop.
func ExampleScheduler() {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 1, 8, 59, 30, 0, time.UTC))
	backend := queue.NewMemoryBackend(queue.MemoryBackendOptions{Clock: clk}) // queuepg or queueredis in production
	sc := queue.Schedule{Name: "refresh-stats", Cron: "*/15 * * * *", Queue: "maintenance", Kind: "stats:refresh"}
	var fleet []*queue.Scheduler
	for range 2 {
		s, err := queue.NewScheduler(queue.SchedulerOptions{Backend: backend, Clock: clk, Schedules: []queue.Schedule{sc}})
		if err != nil {
			panic(err)
		}
		defer s.Close()
		fleet = append(fleet, s)
	}
	runDue := func() {
		for _, s := range fleet {
			if err := s.RunDue(ctx); err != nil {
				panic(err)
			}
		}
	}
	runDue()      // 8:59:30: the instances join the schedule
	for range 4 { // each 15 minutes later, one tick is due
		clk.Add(15 * time.Minute)
		runDue()
	}
	jobs, _ := backend.Fetch(ctx, queue.FetchRequest{Queue: "maintenance", Max: 10, Lease: time.Minute})
	for _, j := range jobs {
		fmt.Println(j.Msg.Kind, j.Msg.RunAt.Format("15:04"))
	}
	a, b := fleet[0].Stats(), fleet[1].Stats()
	fmt.Println("enqueued:", a.Emitted+b.Emitted, "found enqueued:", a.Duplicates+b.Duplicates)
	// Output:
	// stats:refresh 09:00
	// stats:refresh 09:15
	// stats:refresh 09:30
	// stats:refresh 09:45
	// enqueued: 4 found enqueued: 4
}
