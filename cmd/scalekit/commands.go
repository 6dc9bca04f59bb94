package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

// The JSON output. Its field names are part of the command's interface
// (documented in doc.go): add fields, never rename them.

// queueStats is one queue's line of `stats`.
type queueStats struct {
	Queue string `json:"queue"`
	totals
	// Paused is whether the queue is paused fleet-wide (pause, resume).
	Paused bool `json:"paused"`
	// OldestPendingMS is the age of the oldest job due to run, in
	// milliseconds (the queue's lag); 0 when none waits.
	OldestPendingMS int64 `json:"oldest_pending_ms"`

	oldest time.Duration // for the table, which shows less than 1ms
}

// job is a job's record, as `show` prints it and `dead` lists it.
type job struct {
	ID          string    `json:"id"`
	Queue       string    `json:"queue"`
	Kind        string    `json:"kind"`
	State       string    `json:"state"`
	Priority    string    `json:"priority"`
	Attempt     int       `json:"attempt"`
	MaxAttempts int       `json:"max_attempts"`
	Snoozes     int       `json:"snoozes"`
	Payload     rawJSON   `json:"payload"`
	Progress    *progress `json:"progress"` // null when never reported
	Output      rawJSON   `json:"output"`   // null when none
	LastError   string    `json:"last_error"`
	UniqueKey   string    `json:"unique_key"`
	// Metadata is the job's metadata (queue.EnqueueOptions.Metadata);
	// null when it has none.
	Metadata   map[string]string `json:"metadata"`
	EnqueuedAt *time.Time        `json:"enqueued_at"` // times are null when not yet
	RunAt      *time.Time        `json:"run_at"`
	StartedAt  *time.Time        `json:"started_at"`
	FinishedAt *time.Time        `json:"finished_at"`
}

type progress struct {
	Percent   int        `json:"percent"`
	Message   string     `json:"message"`
	UpdatedAt *time.Time `json:"updated_at"`
}

// done is what requeue, delete, cancel, pause and resume print.
type done struct {
	Queue  string `json:"queue"`
	ID     string `json:"id,omitempty"` // none for pause and resume
	Action string `json:"action"`       // "requeued", "deleted", "cancelled", "paused", "resumed"
}

// rawJSON is stored JSON printed as it is: null when empty, a string
// when it is not valid JSON (so the output always parses).
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) {
	switch {
	case len(r) == 0:
		return []byte("null"), nil
	case json.Valid(r):
		return compactJSON(r), nil
	}
	return json.Marshal(string(r))
}

func jobOf(m *queue.Message) job {
	j := job{
		ID: m.ID, Queue: m.Queue, Kind: m.Kind, State: string(m.State), Priority: m.Priority.String(),
		Attempt: m.Attempt, MaxAttempts: m.MaxAttempts, Snoozes: m.Snoozes,
		Payload: m.Payload, Output: m.Output, LastError: m.LastError, UniqueKey: m.UniqueKey, Metadata: m.Metadata,
		EnqueuedAt: timeOrNil(m.EnqueuedAt), RunAt: timeOrNil(m.RunAt),
		StartedAt: timeOrNil(m.StartedAt), FinishedAt: timeOrNil(m.FinishedAt),
	}
	if p := m.Progress; !p.UpdatedAt.IsZero() || p.Percent != 0 || p.Message != "" {
		j.Progress = &progress{Percent: p.Percent, Message: p.Message, UpdatedAt: timeOrNil(p.UpdatedAt)}
	}
	return j
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// The commands.

type statsResult []queueStats

func setupStats(*flag.FlagSet) (action, func() error) {
	return func(ctx context.Context, c *queue.Client, queues []string) (result, error) {
		out := statsResult{}
		if len(queues) == 0 {
			var err error
			if queues, err = statsAll(ctx, c); err != nil {
				return nil, err
			}
		}
		for _, q := range queues {
			n, err := c.Counts(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("queue %s: %w", q, err)
			}
			paused, err := c.Paused(ctx, q)
			if err != nil {
				return nil, fmt.Errorf("queue %s: %w", q, err)
			}
			out = append(out, queueStats{Queue: q, totals: totalsOf(n), Paused: paused,
				OldestPendingMS: n.OldestPending.Milliseconds(), oldest: n.OldestPending})
		}
		return out, nil
	}, nil
}

func (r statsResult) table(w io.Writer) error {
	if len(r) == 0 {
		_, err := fmt.Fprintln(w, "no queues (none holds a job or is paused)")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "QUEUE\tPENDING\tSCHEDULED\tACTIVE\tRETRY\tDEAD\tCANCELLED\tDONE\tOLDEST PENDING\tPAUSED")
	for _, s := range r {
		paused := "no"
		if s.Paused {
			paused = "yes"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", s.Queue, s.Pending, s.Scheduled, s.Active, s.Retry, s.Dead, s.Cancelled, s.Done,
			age(s.oldest, s.Pending > 0), paused)
	}
	return tw.Flush()
}

type showResult struct{ job }

func setupShow(*flag.FlagSet) (action, func() error) {
	return func(ctx context.Context, c *queue.Client, args []string) (result, error) {
		m, err := c.Job(ctx, args[0], args[1])
		if errors.Is(err, queue.ErrNotFound) {
			return nil, notFoundf("job %s not found in queue %s (never enqueued, deleted, or past its retention)", args[1], args[0])
		}
		if err != nil {
			return nil, err
		}
		return showResult{jobOf(m)}, nil
	}, nil
}

func (r showResult) table(w io.Writer) error {
	j := r.job
	tw := newTable(w)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("ID", j.ID)
	row("QUEUE", j.Queue)
	row("KIND", j.Kind)
	row("STATE", j.State)
	row("PRIORITY", j.Priority)
	row("ATTEMPT", fmt.Sprintf("%d/%d", j.Attempt, j.MaxAttempts))
	if j.Snoozes > 0 {
		row("SNOOZES", fmt.Sprint(j.Snoozes))
	}
	row("PAYLOAD", oneLine(string(compactJSON(j.Payload)), 0))
	prog := "-"
	if p := j.Progress; p != nil {
		prog = fmt.Sprintf("%d%%", p.Percent)
		if p.Message != "" {
			prog += " " + oneLine(p.Message, 0)
		}
		if p.UpdatedAt != nil {
			prog += " (at " + stamp(p.UpdatedAt) + ")"
		}
	}
	row("PROGRESS", prog)
	row("OUTPUT", dash(oneLine(string(compactJSON(j.Output)), 0)))
	row("LAST ERROR", dash(oneLine(j.LastError, 0)))
	if j.UniqueKey != "" {
		row("UNIQUE KEY", j.UniqueKey)
	}
	row("METADATA", dash(pairs(j.Metadata)))
	row("ENQUEUED", stamp(j.EnqueuedAt))
	row("RUN AT", stamp(j.RunAt))
	row("STARTED", stamp(j.StartedAt))
	row("FINISHED", stamp(j.FinishedAt))
	return tw.Flush()
}

type deadResult struct {
	queue string
	jobs  []job
}

func (r deadResult) MarshalJSON() ([]byte, error) { return json.Marshal(r.jobs) }

// maxDeadLimit is the most dead jobs one `dead` lists (what queueredis
// caps a listing at).
const maxDeadLimit = 1000

func setupDead(fs *flag.FlagSet) (action, func() error) {
	limit := fs.Int("limit", 20, fmt.Sprintf("list at most this many dead jobs, 1 to %d", maxDeadLimit))
	check := func() error {
		if *limit < 1 || *limit > maxDeadLimit {
			return usagef("-limit %d: must be 1 to %d", *limit, maxDeadLimit)
		}
		return nil
	}
	return func(ctx context.Context, c *queue.Client, args []string) (result, error) {
		ms, err := c.Dead(ctx, args[0], *limit)
		if err != nil {
			return nil, err
		}
		r := deadResult{queue: args[0], jobs: []job{}}
		for _, m := range ms {
			r.jobs = append(r.jobs, jobOf(m))
		}
		return r, nil
	}, check
}

func (r deadResult) table(w io.Writer) error {
	if len(r.jobs) == 0 {
		_, err := fmt.Fprintf(w, "no dead jobs in queue %s\n", r.queue)
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tKIND\tATTEMPT\tFINISHED\tLAST ERROR")
	for _, j := range r.jobs {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Kind, j.Attempt, j.MaxAttempts, stamp(j.FinishedAt), dash(oneLine(j.LastError, 80)))
	}
	return tw.Flush()
}

// setupChange is the setup of a command that changes one job by queue
// and id (requeue, delete; cancel when the Client has it): it calls op
// and prints what was done (verb). notFound is the message for
// queue.ErrNotFound, a format of the queue (%[1]s) and the id (%[2]s).
func setupChange(verb string, op func(*queue.Client, context.Context, string, string) error, notFound string) func(*flag.FlagSet) (action, func() error) {
	return func(*flag.FlagSet) (action, func() error) {
		return func(ctx context.Context, c *queue.Client, args []string) (result, error) {
			err := op(c, ctx, args[0], args[1])
			if errors.Is(err, queue.ErrNotFound) {
				return nil, notFoundf(notFound, args[0], args[1])
			}
			return done{Queue: args[0], ID: args[1], Action: verb}, err
		}, nil
	}
}

// setupQueueChange is a command that changes a whole queue (pause, resume).
func setupQueueChange(verb string, op func(*queue.Client, context.Context, string) error) func(*flag.FlagSet) (action, func() error) {
	return func(*flag.FlagSet) (action, func() error) {
		return func(ctx context.Context, c *queue.Client, args []string) (result, error) {
			return done{Queue: args[0], Action: verb}, op(c, ctx, args[0])
		}, nil
	}
}

func (d done) table(w io.Writer) error {
	if d.ID == "" {
		_, err := fmt.Fprintf(w, "%s queue %s\n", d.Action, d.Queue)
		return err
	}
	_, err := fmt.Fprintf(w, "%s job %s in queue %s\n", d.Action, d.ID, d.Queue)
	return err
}

// notFound is a job the command was asked about that is not there; its
// message says so in the command's words (exit code 1).
type notFound struct{ msg string }

func (e *notFound) Error() string { return e.msg }

func notFoundf(format string, args ...any) error { return &notFound{fmt.Sprintf(format, args...)} }

// Formatting helpers.

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// stamp prints a time in UTC to the millisecond, "-" for none.
func stamp(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// age prints the oldest pending job's age rounded for reading, "-" when
// no job waits.
func age(d time.Duration, waiting bool) string {
	switch {
	case d <= 0 && !waiting:
		return "-"
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// pairs prints metadata as k=v pairs sorted by key, quoting what would
// not read as one pair.
func pairs(md map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(md)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(quoteIf(k) + "=" + quoteIf(md[k]))
	}
	return b.String()
}

func quoteIf(s string) string {
	if s == "" || strings.ContainsAny(s, " =\"\t\n\\") {
		return strconv.Quote(s)
	}
	return s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a value on its table row: newlines and tabs become
// spaces, and past limit characters (0: no limit) it is cut with "...".
func oneLine(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); limit > 0 && len(r) > limit {
		s = string(r[:limit-3]) + "..."
	}
	return s
}

func compactJSON(b []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return b
	}
	return buf.Bytes()
}
