package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/scalekit-go/scalekit/internal/queuex"
	"github.com/scalekit-go/scalekit/queue"
)

// totals is a queue's count per state, as `list` and `stats` print it.
type totals struct {
	Pending   int64 `json:"pending"`
	Scheduled int64 `json:"scheduled"`
	Active    int64 `json:"active"`
	Retry     int64 `json:"retry"`
	Dead      int64 `json:"dead"`
	Cancelled int64 `json:"cancelled"`
	Done      int64 `json:"done"`
}

func totalsOf(n queue.Counts) totals {
	return totals{Pending: n.Pending, Scheduled: n.Scheduled, Active: n.Active, Retry: n.Retry, Dead: n.Dead, Cancelled: n.Cancelled, Done: n.Done}
}

// listResult is what `list` prints: one page of jobs.
type listResult struct {
	Queue string `json:"queue"`
	State string `json:"state"` // "" for every state
	Kind  string `json:"kind"`  // "" for every kind
	Jobs  []job  `json:"jobs"`
	// Next is the cursor of the next page (-cursor); "" at the end.
	Next string `json:"next"`
	// Totals counts the queue's jobs per state, of every kind.
	Totals totals `json:"totals"`

	limit int // for the command that prints the next page
}

func setupList(fs *flag.FlagSet) (action, func() error) {
	state := fs.String("state", "", "list only the jobs in this state: "+stateNames()+" (default: every state)")
	kind := fs.String("kind", "", "list only the jobs of this kind (default: every kind)")
	limit := fs.Int("limit", queue.DefaultListLimit, fmt.Sprintf("list at most this many jobs, 1 to %d", queue.MaxListLimit))
	cursor := fs.String("cursor", "", "go on from where the page before ended (the cursor it printed)")
	check := func() error {
		switch {
		case *limit < 1 || *limit > queue.MaxListLimit:
			return usagef("-limit %d: must be 1 to %d", *limit, queue.MaxListLimit)
		case *state != "" && !isState(*state):
			return usagef("-state %q: must be one of %s", *state, stateNames())
		case *kind != "" && !queuex.ValidName(*kind):
			return usagef("-kind %q: must be 1 to 100 letters, digits, '_', '.', ':' or '-'", *kind)
		}
		return nil
	}
	return func(ctx context.Context, c *queue.Client, args []string) (result, error) {
		p, err := c.List(ctx, queue.ListRequest{Queue: args[0], State: queue.State(*state), Kind: *kind, Limit: *limit, Cursor: *cursor})
		if errors.Is(err, queue.ErrInvalid) && *cursor != "" {
			return nil, usagef("-cursor %q: not a cursor of this listing (pass the one the page before printed, with the same queue, -state and -kind)", *cursor)
		}
		if err != nil {
			return nil, err
		}
		r := listResult{Queue: args[0], State: *state, Kind: *kind, Jobs: []job{}, Next: p.Next, limit: *limit, Totals: totalsOf(p.Totals)}
		for _, m := range p.Jobs {
			r.Jobs = append(r.Jobs, jobOf(m))
		}
		return r, nil
	}, check
}

func isState(s string) bool { return slices.Contains(queue.States(), queue.State(s)) }

func stateNames() string {
	var names []string
	for _, s := range queue.States() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

func (r listResult) table(w io.Writer) error {
	if len(r.Jobs) == 0 {
		what := "no jobs"
		if r.State != "" {
			what = "no " + r.State + " jobs"
		}
		if r.Kind != "" {
			what += " of kind " + r.Kind
		}
		if _, err := fmt.Fprintf(w, "%s in queue %s\n", what, r.Queue); err != nil {
			return err
		}
	} else {
		tw := newTable(w)
		fmt.Fprintln(tw, "ID\tKIND\tSTATE\tPRIORITY\tATTEMPT\tENQUEUED\tLAST ERROR")
		for _, j := range r.Jobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Kind, j.State, j.Priority, j.Attempt, j.MaxAttempts,
				stamp(j.EnqueuedAt), dash(oneLine(j.LastError, 60)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	t := r.Totals
	_, err := fmt.Fprintf(w, "\nqueue %s: %d pending, %d scheduled, %d active, %d retry, %d dead, %d cancelled, %d done\n",
		r.Queue, t.Pending, t.Scheduled, t.Active, t.Retry, t.Dead, t.Cancelled, t.Done)
	if err != nil || r.Next == "" {
		return err
	}
	more := "scalekit queue list " + r.Queue
	if r.State != "" {
		more += " -state " + r.State
	}
	if r.Kind != "" {
		more += " -kind " + r.Kind
	}
	if r.limit != queue.DefaultListLimit {
		more += fmt.Sprint(" -limit ", r.limit)
	}
	_, err = fmt.Fprintf(w, "next page: %s -cursor %s\n", more, r.Next)
	return err
}

// statsAll is the action of `stats` without queue names: every queue the
// backend knows (Client.Queues).
func statsAll(ctx context.Context, c *queue.Client) ([]string, error) {
	qs, err := c.Queues(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the queues: %w", err)
	}
	return qs, nil
}
