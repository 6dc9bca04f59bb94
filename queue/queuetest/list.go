package queuetest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

// listAll pages through r's listing with Client.List and returns every
// page; between returns the hook runs (it may change the queue).
func (e *env) listAll(r queue.ListRequest, between func(page int)) []queue.ListPage {
	e.t.Helper()
	var pages []queue.ListPage
	for {
		p, err := e.c.List(context.Background(), r)
		if err != nil {
			e.t.Fatalf("List(%+v): %v", r, err)
		}
		pages = append(pages, p)
		if p.Next == "" {
			return pages
		}
		if len(pages) > 10000 {
			e.t.Fatal("List: more than 10000 pages")
		}
		if between != nil {
			between(len(pages))
		}
		r.Cursor = p.Next
	}
}

// ids are the ids of the pages' jobs, in order.
func ids(pages []queue.ListPage) []string {
	var out []string
	for _, p := range pages {
		for _, m := range p.Jobs {
			out = append(out, m.ID)
		}
	}
	return out
}

// descending returns ids sorted from the highest.
func descending(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

// runList checks List (pages, filters, totals, cursors) and Queues.
func runList(t *testing.T, f Factory) {
	ctx := context.Background()
	t.Run("ListPages", func(t *testing.T) {
		// Every job once, highest id first, in full pages; jobs added and
		// removed between pages neither repeat nor hide the others.
		e := setup(t, f)
		var all []string
		for i := range 10 {
			all = append(all, e.enqueue(fmt.Sprintf("k%d", i%2), queue.EnqueueOptions{}))
		}
		want := descending(all)
		pages := e.listAll(queue.ListRequest{Queue: e.q, Limit: 3}, nil)
		if got := ids(pages); !slices.Equal(got, want) {
			t.Fatalf("listed %v, want %v (every job, highest id first)", got, want)
		}
		for i, p := range pages {
			if n := len(p.Jobs); (i < len(pages)-1 && n != 3) || n > 3 {
				t.Fatalf("page %d has %d jobs, want 3 but the last", i, n)
			}
			if p.Totals.Pending != 10 {
				t.Fatalf("page %d: totals %+v, want 10 pending", i, p.Totals)
			}
		}
		if m := pages[0].Jobs[0]; m.Queue != e.q || m.State != queue.Pending || string(m.Payload) != `{"kind":"`+m.Kind+`"}` || m.Attempt != 0 {
			t.Fatalf("a listed job: %+v", m)
		}

		// Changes between pages: after the first page, one job not yet
		// listed is deleted, one listed is deleted, and a new one is
		// enqueued (its id is higher: it is not listed).
		var added string
		deleted := want[5]
		got := ids(e.listAll(queue.ListRequest{Queue: e.q, Limit: 3}, func(page int) {
			if page != 1 {
				return
			}
			for _, id := range []string{deleted, want[0]} {
				if err := e.c.Delete(ctx, e.q, id); err != nil {
					t.Fatal(err)
				}
			}
			added = e.enqueue("late", queue.EnqueueOptions{})
		}))
		exp := slices.DeleteFunc(slices.Clone(want), func(id string) bool { return id == deleted })
		if !slices.Equal(got, exp) {
			t.Fatalf("listed %v with changes between pages, want %v (the late job %s not at all)", got, exp, added)
		}

		// An unknown queue lists nothing, at its end.
		p, err := e.c.List(ctx, queue.ListRequest{Queue: Name(t)})
		if err != nil || len(p.Jobs) != 0 || p.Jobs == nil || p.Next != "" || p.Totals != (queue.Counts{}) {
			t.Fatalf("List of an empty queue = %+v %v, want no jobs (an empty slice), no Next", p, err)
		}
		// Exactly a page's worth: the page is the end.
		e2 := setup(t, f)
		e2.enqueue("a", queue.EnqueueOptions{})
		e2.enqueue("b", queue.EnqueueOptions{})
		if p, err := e2.c.List(ctx, queue.ListRequest{Queue: e2.q, Limit: 2}); err != nil || len(p.Jobs) != 2 || p.Next != "" {
			t.Fatalf("List of 2 jobs by 2 = %d jobs, next %q, %v; want 2 and no Next", len(p.Jobs), p.Next, err)
		}
	})
	t.Run("ListFilters", func(t *testing.T) {
		// State (as Job reports it) and kind filters, alone and together,
		// with the queue's totals of every kind.
		e := setup(t, f)
		byState := map[queue.State][]string{}
		add := func(st queue.State, id string) { byState[st] = append(byState[st], id) }
		done := e.enqueue("a", queue.EnqueueOptions{})
		if err := e.b.Complete(ctx, e.fetch(1, time.Minute)[0], []byte(`1`)); err != nil {
			t.Fatal(err)
		}
		add(queue.Done, done)
		dead := e.enqueue("b", queue.EnqueueOptions{})
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "x", e.clk.Now(), true); err != nil {
			t.Fatal(err)
		}
		add(queue.Dead, dead)
		retry := e.enqueue("a", queue.EnqueueOptions{})
		if err := e.b.Fail(ctx, e.fetch(1, time.Minute)[0], "x", e.clk.Now().Add(time.Hour), false); err != nil {
			t.Fatal(err)
		}
		add(queue.Retry, retry)
		active := e.enqueue("b", queue.EnqueueOptions{})
		e.fetch(1, time.Minute)
		add(queue.Active, active)
		cancelled := e.enqueue("a", queue.EnqueueOptions{})
		if err := e.c.Cancel(ctx, e.q, cancelled); err != nil {
			t.Fatal(err)
		}
		add(queue.Cancelled, cancelled)
		add(queue.Scheduled, e.enqueue("b", queue.EnqueueOptions{Delay: time.Hour}))
		due := e.enqueue("a", queue.EnqueueOptions{Delay: time.Second}) // pending once due
		add(queue.Pending, e.enqueue("a", queue.EnqueueOptions{}))
		add(queue.Pending, e.enqueue("b", queue.EnqueueOptions{}))
		e.clk.Add(time.Second)
		add(queue.Pending, due)

		kindOf := map[string]string{}
		var all []string
		for _, p := range e.listAll(queue.ListRequest{Queue: e.q}, nil) {
			for _, m := range p.Jobs {
				kindOf[m.ID] = m.Kind
				all = append(all, m.ID)
			}
		}
		if len(all) != 9 {
			t.Fatalf("listed %d jobs, want 9", len(all))
		}
		for _, st := range queue.States() {
			for _, kind := range []string{"", "a", "b"} {
				var want []string
				for _, id := range byState[st] {
					if kind == "" || kindOf[id] == kind {
						want = append(want, id)
					}
				}
				pages := e.listAll(queue.ListRequest{Queue: e.q, State: st, Kind: kind, Limit: 1}, nil)
				if got := ids(pages); !slices.Equal(got, descending(want)) {
					t.Fatalf("List(state %q, kind %q) = %v, want %v", st, kind, got, descending(want))
				}
				for _, p := range pages {
					for _, m := range p.Jobs {
						if m.State != st {
							t.Fatalf("List(state %q) listed a job in state %s", st, m.State)
						}
					}
				}
				if tot := pages[0].Totals; tot.Pending != 3 || tot.Scheduled != 1 || tot.Active != 1 || tot.Retry != 1 || tot.Dead != 1 || tot.Done != 1 || tot.Cancelled != 1 {
					t.Fatalf("List(state %q, kind %q) totals %+v, want the queue's (3 pending, 1 of each other state)", st, kind, tot)
				}
			}
		}
		// A job whose lease ran out is listed as pending, as Job says.
		e.clk.Add(2 * time.Minute)
		if got := ids(e.listAll(queue.ListRequest{Queue: e.q, State: queue.Active}, nil)); len(got) != 0 {
			t.Fatalf("List(active) = %v after the lease ran out, want none", got)
		}
		if got := ids(e.listAll(queue.ListRequest{Queue: e.q, State: queue.Pending}, nil)); !slices.Contains(got, active) {
			t.Fatalf("List(pending) = %v after the lease ran out, want %s among them", got, active)
		}
	})
	t.Run("ListFilterPastTheScanBudget", func(t *testing.T) {
		// The two jobs of a rare kind sit below more than ListScanBudget
		// others: a filtered page still finds both.
		e := setup(t, f)
		rare := []string{e.enqueue("rare", queue.EnqueueOptions{}), e.enqueue("rare", queue.EnqueueOptions{})}
		var batch []queue.EnqueueRequest
		for range queue.ListScanBudget + 200 {
			batch = append(batch, queue.EnqueueRequest{Queue: e.q, Kind: "common"})
		}
		if _, err := e.c.EnqueueMany(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		p, err := e.c.List(ctx, queue.ListRequest{Queue: e.q, Kind: "rare", Limit: 10})
		if err != nil || !slices.Equal(ids([]queue.ListPage{p}), descending(rare)) || p.Next != "" {
			t.Fatalf("List(kind rare) = %v, next %q, %v; want %v and no Next", ids([]queue.ListPage{p}), p.Next, err, descending(rare))
		}
		p, err = e.c.List(ctx, queue.ListRequest{Queue: e.q, State: queue.Pending, Limit: 1000})
		if err != nil || len(p.Jobs) != 1000 || p.Next == "" {
			t.Fatalf("List(pending, limit 1000) = %d jobs, next %q, %v; want a full page and a Next", len(p.Jobs), p.Next, err)
		}
		p, err = e.c.List(ctx, queue.ListRequest{Queue: e.q, State: queue.Pending, Limit: 1000, Cursor: p.Next})
		if err != nil || len(p.Jobs) != 202 || p.Next != "" {
			t.Fatalf("the second page = %d jobs, next %q, %v; want the other 202 and no Next", len(p.Jobs), p.Next, err)
		}
	})
	t.Run("ListBadRequests", func(t *testing.T) {
		e := setup(t, f)
		e.enqueue("a", queue.EnqueueOptions{})
		e.enqueue("a", queue.EnqueueOptions{})
		p, err := e.c.List(ctx, queue.ListRequest{Queue: e.q, Limit: 1})
		if err != nil || p.Next == "" {
			t.Fatalf("List: %+v %v, want a Next", p, err)
		}
		other := Name(t)
		for _, c := range []struct {
			r     queue.ListRequest
			field string
		}{
			{queue.ListRequest{}, "Queue"},
			{queue.ListRequest{Queue: "bad name"}, "Queue"},
			{queue.ListRequest{Queue: e.q, Limit: -1}, "Limit"},
			{queue.ListRequest{Queue: e.q, Limit: queue.MaxListLimit + 1}, "Limit"},
			{queue.ListRequest{Queue: e.q, State: "bogus"}, "State"},
			{queue.ListRequest{Queue: e.q, Kind: "bad kind"}, "Kind"},
			{queue.ListRequest{Queue: e.q, Cursor: "not a cursor!"}, "Cursor"},
			{queue.ListRequest{Queue: e.q, Cursor: base64.RawURLEncoding.EncodeToString([]byte("l1\nq\n\n\nbad id"))}, "Cursor"},
			{queue.ListRequest{Queue: e.q, Cursor: p.Next[:10]}, "Cursor"},
			{queue.ListRequest{Queue: other, Cursor: p.Next}, "Cursor"},
			{queue.ListRequest{Queue: e.q, Kind: "a", Cursor: p.Next}, "Cursor"},
		} {
			if _, err := e.c.List(ctx, c.r); !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), c.field) {
				t.Errorf("List(%+v): %v, want ErrInvalid naming %s", c.r, err, c.field)
			}
		}
	})
	t.Run("ListWhileEnqueueing", func(t *testing.T) {
		// Pages read while 8 goroutines enqueue and complete: every job
		// there before the listing started and never removed is listed
		// once, and no job twice.
		e := setup(t, f)
		var before []string
		for i := range 40 {
			before = append(before, e.enqueue(fmt.Sprint("k", i%3), queue.EnqueueOptions{}))
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := e.c.Enqueue(ctx, e.q, "new", nil, queue.EnqueueOptions{}); err != nil {
						t.Error(err)
						return
					}
					ls, err := e.b.Fetch(ctx, queue.FetchRequest{Queue: e.q, Max: 1, Lease: time.Minute, Order: order})
					if err != nil {
						t.Error(err)
						return
					}
					for _, l := range ls {
						if err := e.b.Complete(ctx, l, nil); err != nil {
							t.Error(err)
							return
						}
					}
				}
			})
		}
		got := ids(e.listAll(queue.ListRequest{Queue: e.q, Limit: 7}, nil))
		close(stop)
		wg.Wait()
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Fatalf("job %s listed twice", id)
			}
			seen[id] = true
		}
		for _, id := range before {
			if !seen[id] {
				t.Fatalf("job %s, there the whole time, not listed", id)
			}
		}
		if !slices.IsSortedFunc(got, func(a, b string) int { return strings.Compare(b, a) }) {
			t.Fatalf("listed out of order: %v", got)
		}
	})
	t.Run("Queues", func(t *testing.T) {
		// A queue with a job and a paused empty queue are listed, once
		// each, sorted; a name never used is not.
		e := setup(t, f)
		paused, never := Name(t), Name(t)
		e.enqueue("a", queue.EnqueueOptions{})
		e.enqueue("a", queue.EnqueueOptions{})
		if _, err := e.c.EnqueueMany(ctx, queue.EnqueueRequest{Queue: e.q + "-many", Kind: "a"}); err != nil {
			t.Fatal(err)
		}
		if err := e.c.Pause(ctx, paused); err != nil {
			t.Fatal(err)
		}
		qs, err := e.c.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{e.q, e.q + "-many", paused} {
			if !slices.Contains(qs, q) {
				t.Fatalf("Queues = %v, want %s among them", qs, q)
			}
		}
		if slices.Contains(qs, never) {
			t.Fatalf("Queues = %v lists %s, which was never used", qs, never)
		}
		if !slices.IsSorted(qs) || len(slices.Compact(slices.Clone(qs))) != len(qs) {
			t.Fatalf("Queues = %v, want sorted, each once", qs)
		}
	})
}
