package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/scalekit-go/scalekit/internal/queuex"
	"github.com/scalekit-go/scalekit/queue"
)

// Exit codes.
const (
	exitOK    = 0 // the command did what was asked
	exitError = 1 // the operation failed: job not found, server down or slow
	exitUsage = 2 // bad command line: an unknown command or flag, a bad argument, no backend
)

// DefaultTimeout bounds a whole command unless -timeout says otherwise.
const DefaultTimeout = 10 * time.Second

// result is what a command prints: its value is encoded as the -json
// output, and table writes the readable form.
type result interface {
	table(w io.Writer) error
}

// action runs a command on a client with the command's positional
// arguments (already counted and checked as queue names and ids).
type action func(ctx context.Context, c *queue.Client, args []string) (result, error)

// command is one entry of a command table: adding an operation (cancel,
// pause, resume, list) is one more entry.
type command struct {
	name    string
	args    []string // the positional arguments' names; a last name ending in "..." takes one or more, "[name...]" zero or more
	summary string
	// setup declares the command's own flags on fs and returns the action,
	// which reads them once they are parsed. check, when set, validates
	// them and returns a usage error.
	setup func(fs *flag.FlagSet) (run action, check func() error)
}

// queueCommands is the table of `scalekit queue <command>`.
var queueCommands = []command{
	{name: "stats", args: []string{"[queue...]"}, summary: "count each queue's jobs per state (every queue when none is named)", setup: setupStats},
	{name: "list", args: []string{"queue"}, summary: "list a queue's jobs, newest first, by state and kind, a page at a time", setup: setupList},
	{name: "show", args: []string{"queue", "id"}, summary: "show one job: state, attempts, progress, output, last error, metadata, times", setup: setupShow},
	{name: "dead", args: []string{"queue"}, summary: "list a queue's dead jobs, most recent first", setup: setupDead},
	{name: "requeue", args: []string{"queue", "id"}, summary: "make a dead or cancelled job pending again with fresh attempts",
		setup: setupChange("requeued", (*queue.Client).Requeue, "no dead or cancelled job %[2]s in queue %[1]s (requeue takes dead and cancelled jobs only: see `scalekit queue show %[1]s %[2]s`)")},
	{name: "delete", args: []string{"queue", "id"}, summary: "remove a job in any state",
		setup: setupChange("deleted", (*queue.Client).Delete, "job %[2]s not found in queue %[1]s")},
	{name: "cancel", args: []string{"queue", "id"}, summary: "cancel a job: a waiting one never runs, a running one's handler is cancelled",
		setup: setupChange("cancelled", (*queue.Client).Cancel, "job %[2]s not found in queue %[1]s")},
	{name: "pause", args: []string{"queue"}, summary: "stop every worker fetching from a queue (enqueues still land)",
		setup: setupQueueChange("paused", (*queue.Client).Pause)},
	{name: "resume", args: []string{"queue"}, summary: "let the workers fetch from a paused queue again",
		setup: setupQueueChange("resumed", (*queue.Client).Resume)},
}

// usageError is a bad command line (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// run is the whole program: it parses args (without the program name),
// reads the environment through env, writes results to stdout and
// messages to stderr, and returns the exit code.
func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, topUsage)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, topUsage)
		return exitOK
	case "queue":
	default:
		fmt.Fprintf(stderr, "scalekit: unknown command %q\n\n%s", args[0], topUsage)
		return exitUsage
	}
	args = args[1:]
	if len(args) == 0 {
		fmt.Fprint(stderr, queueUsage())
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, queueUsage())
		return exitOK
	}
	var cmd *command
	for i := range queueCommands {
		if queueCommands[i].name == args[0] {
			cmd = &queueCommands[i]
		}
	}
	if cmd == nil {
		what := "unknown command"
		if strings.HasPrefix(args[0], "-") {
			what = "flags come after the command; unknown command"
		}
		fmt.Fprintf(stderr, "scalekit queue: %s %q\n\n%s", what, args[0], queueUsage())
		return exitUsage
	}
	return cmd.exec(ctx, args[1:], env, stdout, stderr)
}

// exec parses a command's flags and arguments, opens the backend, runs the
// action and prints its result.
func (cmd *command) exec(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	name := "scalekit queue " + cmd.name
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var conf config
	conf.flags(fs)
	act, check := cmd.setup(fs)
	usage := func(err error) int {
		fmt.Fprintf(stderr, "%s: %v\n\n", name, err)
		cmd.usage(stderr, fs)
		return exitUsage
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		cmd.usage(stdout, fs)
		return exitOK
	}
	if err != nil {
		return usage(err)
	}
	if err := cmd.checkArgs(pos); err != nil {
		return usage(err)
	}
	if check != nil {
		if err := check(); err != nil {
			return usage(err)
		}
	}
	if conf.timeout <= 0 {
		return usage(usagef("-timeout %v: must be > 0", conf.timeout))
	}
	ctx, cancel := context.WithTimeout(ctx, conf.timeout)
	defer cancel()
	b, closeBackend, err := conf.open(env)
	if err != nil {
		var ue *usageError
		if errors.As(err, &ue) {
			return usage(err)
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitError
	}
	defer closeBackend()
	c, err := queue.NewClient(queue.ClientOptions{Backend: b})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return exitError
	}
	res, err := act(ctx, c, pos)
	var ue *usageError
	if errors.As(err, &ue) { // an argument only the backend could judge (a cursor)
		return usage(err)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %s\n", name, conf.explain(ctx, err))
		return exitError
	}
	if conf.json {
		err = writeJSON(stdout, res)
	} else {
		err = res.table(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: writing the output: %v\n", name, err)
		return exitError
	}
	return exitOK
}

// checkArgs counts the positional arguments and checks each as a queue
// name or job id.
func (cmd *command) checkArgs(pos []string) error {
	variadic := len(cmd.args) > 0 && strings.HasSuffix(strings.TrimSuffix(cmd.args[len(cmd.args)-1], "]"), "...")
	required := len(cmd.args)
	if variadic && strings.HasPrefix(cmd.args[len(cmd.args)-1], "[") {
		required-- // zero or more
	}
	switch {
	case len(pos) < required:
		return usagef("missing <%s>", strings.TrimSuffix(cmd.args[len(pos)], "..."))
	case len(pos) > len(cmd.args) && !variadic:
		return usagef("unexpected argument %q (takes %s)", pos[len(cmd.args)], cmd.argsUsage())
	}
	for i, a := range pos {
		what := strings.TrimSuffix(strings.Trim(cmd.args[min(i, len(cmd.args)-1)], "[]"), "...")
		if !queuex.ValidName(a) {
			return usagef("%s %q: must be 1 to 100 letters, digits, '_', '.', ':' or '-'", what, a)
		}
	}
	return nil
}

func (cmd *command) argsUsage() string {
	var b strings.Builder
	for i, a := range cmd.args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if n, ok := strings.CutSuffix(a, "...]"); ok {
			fmt.Fprintf(&b, "[<%s>...]", strings.TrimPrefix(n, "["))
		} else if n, ok := strings.CutSuffix(a, "..."); ok {
			fmt.Fprintf(&b, "<%s>...", n)
		} else {
			fmt.Fprintf(&b, "<%s>", a)
		}
	}
	return b.String()
}

func (cmd *command) usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: scalekit queue %s [flags] %s\n\n%s.\n\nflags:\n", cmd.name, cmd.argsUsage(), upperFirst(cmd.summary))
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	fmt.Fprint(w, "\n"+backendHelp)
}

// parseInterleaved parses flags placed anywhere among the positional
// arguments (`dead emails -limit 5`), which package flag alone stops at;
// after "--" everything is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

const topUsage = `usage: scalekit <command> ...

commands:
  queue   inspect and repair job queues (scalekit queue -h)
`

func queueUsage() string {
	var b strings.Builder
	b.WriteString("usage: scalekit queue <command> [flags] [arguments]\n\ncommands:\n")
	for _, c := range queueCommands {
		fmt.Fprintf(&b, "  %-8s %-16s %s\n", c.name, c.argsUsage(), c.summary)
	}
	b.WriteString("\nscalekit queue <command> -h lists the command's flags.\n\n" + backendHelp)
	return b.String()
}

const backendHelp = `The backend is Redis (-redis or $REDIS_URL: redis://host:port/db; a Redis
Cluster with -cluster, several comma-separated hosts, or addr= parameters) or
PostgreSQL (-database or $DATABASE_URL). With both variables set, -backend
redis|postgres picks one. Exit codes: 0 ok, 1 the operation failed (job not
found, server down), 2 usage error.
`
