package queue

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/queuex"
)

// The bounds of ListRequest.Limit.
const (
	// DefaultListLimit is the page size of a ListRequest whose Limit is 0.
	DefaultListLimit = 50
	// MaxListLimit is the largest ListRequest.Limit.
	MaxListLimit = 1000
)

// ListScanBudget is how many jobs one Backend.List call of the backends
// of this module examines at most when a filter (State, Kind) is set: a
// filtered page over a queue where few jobs match costs a bounded amount
// per call, and Client.List calls again for the rest of the page.
const ListScanBudget = 1000

// ListRequest asks Client.List for one page of a queue's jobs.
type ListRequest struct {
	// Queue is the queue to list; required.
	Queue string
	// State keeps only the jobs in this state, as Job reports it (a
	// scheduled or retry job whose time came, and an active job whose
	// lease ran out, are pending). Default: "" (every state).
	State State
	// Kind keeps only the jobs of this kind. Default: "" (every kind).
	Kind string
	// Limit is the most jobs of the page, 1 to MaxListLimit.
	// Default: 0, which is DefaultListLimit (50).
	Limit int
	// Cursor continues a listing: the Next of the page before, with the
	// same Queue, State and Kind. Default: "" (the first page).
	Cursor string
}

// ListPage is one page of Client.List.
type ListPage struct {
	// Jobs are the page's jobs, by id, highest first: newest first for
	// the ids Enqueue makes, which are time-ordered. Limit of them
	// unless the listing reached its end.
	Jobs []*Message
	// Next is the cursor of the next page (ListRequest.Cursor); empty
	// when the listing is at its end.
	Next string
	// Totals counts the queue's jobs per state (Counts), of every kind
	// whatever ListRequest.Kind: a count per kind would cost a scan of
	// the queue. It is read right after the page, not in the same
	// snapshot.
	Totals Counts
}

// ListQuery is one Backend.List call: the jobs of Queue whose id is below
// Before (every job when Before is empty), highest id first, that match
// State and Kind (empty: any).
type ListQuery struct {
	Queue string
	// State matches the state Job reports: a scheduled or retry job whose
	// time came, and an active job whose lease ran out, are pending.
	State State
	Kind  string
	// Before is an id: only jobs with lower ids are listed ("" for no
	// bound).
	Before string
	// Limit is the most jobs to return, 1 to MaxListLimit.
	Limit int
}

// states are the states a job can be in, in the order of their life.
var states = []State{Pending, Scheduled, Active, Retry, Done, Dead, Cancelled}

// States returns the states a job can be in, in the order of their life:
// pending, scheduled, active, retry, done, dead, cancelled.
func States() []State { return slices.Clone(states) }

// validState reports whether s is one of States.
func validState(s State) bool { return slices.Contains(states, s) }

// cursorVersion starts every cursor, so that a later encoding can tell
// its own from these.
const cursorVersion = "l1"

// encodeCursor is the opaque cursor continuing r's listing below id.
func encodeCursor(r ListRequest, id string) string {
	raw := strings.Join([]string{cursorVersion, r.Queue, string(r.State), r.Kind, id}, "\n")
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeCursor returns the id r.Cursor continues below, or an ErrInvalid
// error: a cursor that is not one of encodeCursor's, or one of another
// listing (queue, state or kind).
func decodeCursor(r ListRequest) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(r.Cursor)
	parts := strings.Split(string(raw), "\n")
	if err != nil || len(parts) != 5 || parts[0] != cursorVersion || !queuex.ValidName(parts[4]) {
		return "", fmt.Errorf("%w: ListRequest.Cursor %q is not a cursor of Client.List (pass a ListPage.Next as it is)", ErrInvalid, r.Cursor)
	}
	if parts[1] != r.Queue || parts[2] != string(r.State) || parts[3] != r.Kind {
		return "", fmt.Errorf("%w: ListRequest.Cursor continues the listing of queue %q, state %q, kind %q; the request is for queue %q, state %q, kind %q",
			ErrInvalid, parts[1], parts[2], parts[3], r.Queue, r.State, r.Kind)
	}
	return parts[4], nil
}

// checkList validates r and fills its default Limit.
func checkList(r *ListRequest) error {
	if err := checkName("ListRequest.Queue", r.Queue); err != nil {
		return err
	}
	if r.State != "" && !validState(r.State) {
		return fmt.Errorf("%w: ListRequest.State %q must be empty (every state) or one of %v", ErrInvalid, r.State, states)
	}
	if r.Kind != "" {
		if err := checkName("ListRequest.Kind", r.Kind); err != nil {
			return err
		}
	}
	if r.Limit == 0 {
		r.Limit = DefaultListLimit
	}
	if r.Limit < 1 || r.Limit > MaxListLimit {
		return fmt.Errorf("%w: ListRequest.Limit must be 1 to %d (0: %d), got %d", ErrInvalid, MaxListLimit, DefaultListLimit, r.Limit)
	}
	return nil
}

// List returns one page of a queue's jobs, filtered by state and kind,
// by id from the highest (newest first for generated ids), with the
// queue's totals per state, or an ErrInvalid error naming the bad field
// of r (a malformed cursor too).
//
// The cursor (ListPage.Next) is a position in that order, not a snapshot:
// jobs added or removed between pages do not disturb it. No job is listed
// twice in one listing, and a job that stays in the queue (and matches
// the filter) the whole time is listed once. A job enqueued during the
// listing shows up only if its id sorts below the cursor (not the case
// for generated ids, which grow).
//
// A filtered page costs a bounded amount per backend call (ListScanBudget
// jobs examined): List calls the backend again until the page is full or
// the queue is exhausted, so a filter that few jobs of a large queue
// match takes several round trips; ctx bounds them.
func (c *Client) List(ctx context.Context, r ListRequest) (ListPage, error) {
	if err := checkList(&r); err != nil {
		return ListPage{}, err
	}
	q := ListQuery{Queue: r.Queue, State: r.State, Kind: r.Kind, Limit: r.Limit}
	if r.Cursor != "" {
		var err error
		if q.Before, err = decodeCursor(r); err != nil {
			return ListPage{}, err
		}
	}
	var page ListPage
	for {
		jobs, next, err := c.b.List(ctx, q)
		if err != nil {
			return ListPage{}, err
		}
		page.Jobs = append(page.Jobs, jobs...)
		if next == "" || len(page.Jobs) >= r.Limit {
			if next != "" {
				page.Next = encodeCursor(r, next)
			}
			break
		}
		if next == q.Before {
			return ListPage{}, fmt.Errorf("queue: List: the backend did not move past job %q", next)
		}
		q.Before, q.Limit = next, r.Limit-len(page.Jobs)
	}
	if page.Jobs == nil {
		page.Jobs = []*Message{}
	}
	var err error
	if page.Totals, err = c.b.Counts(ctx, r.Queue); err != nil {
		return ListPage{}, err
	}
	return page, nil
}

// Queues returns the names of the backend's queues, sorted: every queue
// that holds a job or is paused, and queues that held jobs (a backend
// may keep listing a queue whose jobs are all gone). A tool that
// inspects a deployment starts here (scalekit queue stats).
func (c *Client) Queues(ctx context.Context) ([]string, error) {
	return c.b.Queues(ctx)
}

// reportedState is the state Job, Counts and List report for a job
// stored in state st: a scheduled or retry job due at runAt and an active
// job whose lease ends at leaseUntil are pending once that time is not
// after now (they wait only for a worker).
func reportedState(st State, runAt, leaseUntil, now time.Time) State {
	switch {
	case (st == Scheduled || st == Retry) && !runAt.After(now):
		return Pending
	case st == Active && !leaseUntil.IsZero() && !leaseUntil.After(now):
		return Pending
	}
	return st
}

// List is Backend.List: it sorts the queue's ids on each call, so a page
// costs O(n log n) for a queue of n jobs (the memory backend is for tests
// and development).
func (b *MemoryBackend) List(_ context.Context, r ListQuery) ([]*Message, string, error) {
	now := clock.Now(b.o.Clock)
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.queues[r.Queue]
	if q == nil {
		return nil, "", nil
	}
	b.due(q, now)
	ids := make([]string, 0, len(q.jobs))
	for id := range q.jobs {
		if r.Before == "" || id < r.Before {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	var out []*Message
	for _, id := range ids {
		j := q.jobs[id]
		if (r.Kind != "" && j.m.Kind != r.Kind) || (r.State != "" && reportedState(j.m.State, j.m.RunAt, j.leaseUntil, now) != r.State) {
			continue
		}
		if len(out) == r.Limit {
			return out, out[len(out)-1].ID, nil
		}
		m := j.m
		m.State = reportedState(m.State, m.RunAt, j.leaseUntil, now)
		m.Payload, m.Output, m.Metadata = slices.Clone(m.Payload), slices.Clone(m.Output), maps.Clone(m.Metadata)
		out = append(out, &m)
	}
	return out, "", nil
}

// Queues is Backend.Queues: the queues that received a job, and the
// paused ones.
func (b *MemoryBackend) Queues(_ context.Context) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.named)+len(b.paused))
	for q := range b.named {
		out = append(out, q)
	}
	for q := range b.paused {
		if !b.named[q] {
			out = append(out, q)
		}
	}
	slices.Sort(out)
	return out, nil
}
