package scalekittest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrMissingBinary is returned (wrapped) by the starters when a server
// binary is not installed on the machine. The testing helpers turn it into
// t.Skip, or t.Fatal when SCALEKIT_REQUIRE_SERVERS=1.
var ErrMissingBinary = errors.New("scalekittest: server binary not found")

// lookBinary finds name on PATH, then in the extra directories.
func lookBinary(name string, extra ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range extra {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s (install it, e.g. apt-get install %s)", ErrMissingBinary, name, packageFor(name))
}

func packageFor(name string) string {
	switch name {
	case "redis-server", "redis-cli":
		return "redis-server"
	case "nats-server":
		return "nats-server"
	case "varnishd":
		return "varnish varnish-modules"
	default:
		return "postgresql"
	}
}

// postgresBinDir finds the directory holding initdb, postgres and
// pg_basebackup: $SCALEKIT_PG_BINDIR, then `pg_config --bindir`, then the
// newest /usr/lib/postgresql/*/bin.
func postgresBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres", "pg_basebackup"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("SCALEKIT_PG_BINDIR"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w: SCALEKIT_PG_BINDIR=%s has no initdb/postgres/pg_basebackup", ErrMissingBinary, dir)
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgMajor(dirs[i]) > pgMajor(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: PostgreSQL server binaries (initdb, postgres, pg_basebackup) not in pg_config --bindir or /usr/lib/postgresql/*/bin (install postgresql, or set SCALEKIT_PG_BINDIR)", ErrMissingBinary)
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. The port is
// free when this returns; a server that loses the race fails to bind and the
// starters retry with another port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("scalekittest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// runAs is the account servers run under. PostgreSQL refuses to run as
// root, so when this process is root the postgres user is used.
type runAs struct {
	cred *syscall.Credential // nil: the current user
}

func postgresAccount() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("scalekittest: running as root and there is no 'postgres' user to run PostgreSQL as (initdb refuses root): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return runAs{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}, nil
}

// chown hands path to the account (no-op for the current user).
func (r runAs) chown(path string) error {
	if r.cred == nil {
		return nil
	}
	return os.Chown(path, int(r.cred.Uid), int(r.cred.Gid))
}

// mkTempDir makes a temp dir the account can use. t.TempDir is 0700 root's
// and unreachable for the postgres user, so servers get their own.
func (r runAs) mkTempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("scalekittest: temp dir: %w", err)
	}
	if err := r.chown(dir); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("scalekittest: chown %s: %w", dir, err)
	}
	return dir, nil
}

func (r runAs) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// runTool runs a short-lived tool to completion and returns its combined
// output in the error when it fails.
func (r runAs) runTool(ctx context.Context, name string, args ...string) error {
	cmd := r.command(ctx, name, args...)
	if cmd.Dir == "" {
		cmd.Dir = os.TempDir() // the account may not be able to read our cwd
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scalekittest: %s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, tail(out.String(), 2000))
	}
	return nil
}

// proc is one long-running server process. It dies with the test binary
// (Pdeathsig) so a crashed test leaves no server behind.
type proc struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logPath string
}

func (r runAs) startProc(name, logPath string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("scalekittest: open log: %w", err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir = filepath.Dir(logPath)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("scalekittest: start %s: %w", filepath.Base(name), err)
	}
	p := &proc{cmd: cmd, exited: make(chan struct{}), logPath: logPath}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig and, when wait > 0, waits up to wait for the exit, then
// SIGKILLs. A stopped (SIGSTOP) process is continued first so it can exit.
func (p *proc) stop(sig syscall.Signal, wait time.Duration) {
	if !p.alive() {
		return
	}
	_ = p.signalGroup(syscall.SIGCONT)
	if sig == syscall.SIGKILL {
		p.killGroup()
	} else {
		_ = p.cmd.Process.Signal(sig)
	}
	select {
	case <-p.exited:
		return
	case <-time.After(wait):
	}
	p.killGroup()
	<-p.exited
}

// killGroup SIGKILLs the process and every process below it (PostgreSQL
// backends), so nothing keeps the port or shared memory.
func (p *proc) killGroup() {
	_ = p.signalGroup(syscall.SIGKILL)
	_ = p.cmd.Process.Kill()
}

// signalGroup sends sig to the process and all its descendants. SIGSTOP and
// SIGCONT freeze and thaw a server with every backend. Its process group is
// not enough: PostgreSQL backends call setsid() and leave the group.
func (p *proc) signalGroup(sig syscall.Signal) error {
	pids := append([]int{p.cmd.Process.Pid}, descendants(p.cmd.Process.Pid)...)
	var first error
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && first == nil && pid == p.cmd.Process.Pid {
			first = err
		}
	}
	return first
}

// descendants lists the processes below pid, read from /proc.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so parse after ')'.
		rest := string(b)
		if i := strings.LastIndexByte(rest, ')'); i >= 0 {
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], child)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func (p *proc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	return tail(string(b), 3000)
}

func tail(s string, n int) string {
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return strings.TrimSpace(s)
}

// waitFor polls ready every 20ms until it returns nil, the process exits, or
// ctx ends.
func waitFor(ctx context.Context, p *proc, what string, ready func(context.Context) error) error {
	var last error
	for {
		if p != nil && !p.alive() {
			return fmt.Errorf("scalekittest: %s exited during start-up (%v); log:\n%s", what, p.waitErr, p.logTail())
		}
		if last = ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := ""
			if p != nil {
				msg = "; log:\n" + p.logTail()
			}
			return fmt.Errorf("scalekittest: %s not ready: %w (last error: %v)%s", what, ctx.Err(), last, msg)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
