package scalekittest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ChromiumOptions configures StartChromium. The zero value starts a
// headless Chromium found on the machine.
type ChromiumOptions struct {
	// Args are extra Chromium switches appended to the defaults, e.g.
	// []string{"--window-size=1280,900"}. Default: none.
	Args []string
	// StartTimeout bounds the wait for the DevTools endpoint to answer.
	// Default: 30s.
	StartTimeout time.Duration
}

// ChromiumEnv names the environment variable that, when set, is the
// Chromium (or Chrome) binary StartChromium runs, instead of the first of
// chromium, chromium-browser, google-chrome and google-chrome-stable
// found on PATH or in /usr/bin.
const ChromiumEnv = "SCALEKIT_CHROMIUM"

// ChromiumArgs are the switches StartChromium always passes, before
// ChromiumOptions.Args: headless, no GPU, nothing fetched in the
// background (no component updates, sync, QUIC or first-run pages), so
// the browser talks to the pages a test opens and to nothing else. As
// root it adds --no-sandbox (Chromium's sandbox refuses root); a fresh
// --user-data-dir in a temp dir, the DevTools port and about:blank come
// last.
var ChromiumArgs = []string{"--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync",
	"--no-default-browser-check", "--disable-extensions", "--mute-audio", "--hide-scrollbars"}

// ChromiumServer is one headless Chromium with its DevTools protocol
// endpoint on 127.0.0.1, a profile of its own in a temp dir: drive it
// with any DevTools client (chromedp, rod) connected to DevToolsURL. The
// package imports no such client, so depending on scalekittest adds
// none to a module. Its methods are safe for concurrent use.
type ChromiumServer struct {
	dir   string
	wsURL string

	daemon
}

// StartChromium starts a headless Chromium with a fresh profile and
// waits until its DevTools endpoint answers. Close stops it (and every
// renderer) and removes the profile. It returns an error wrapping
// ErrMissingBinary when no Chromium is installed (apt-get install
// chromium) or $SCALEKIT_CHROMIUM names no executable.
func StartChromium(ctx context.Context, opts ChromiumOptions) (*ChromiumServer, error) {
	bin, err := ChromiumBinary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "scalekit-chromium-*")
	if err != nil {
		return nil, fmt.Errorf("scalekittest: temp dir: %w", err)
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	args := append([]string(nil), ChromiumArgs...)
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox")
	}
	// Port 0: Chromium picks a free port and writes it to
	// DevToolsActivePort in the profile, so no other process can take it
	// between our choice and its bind.
	profile := filepath.Join(dir, "profile")
	args = append(args, opts.Args...)
	args = append(args, "--user-data-dir="+profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank")
	s := &ChromiumServer{daemon: daemon{what: "chromium"}, dir: dir}
	p, err := runAs{}.startProc(bin, filepath.Join(dir, "chromium.log"), args...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = waitFor(wctx, p, "chromium's DevTools endpoint", func(ctx context.Context) error {
		port, err := devToolsPort(profile)
		if err != nil {
			return err
		}
		s.port = port
		s.wsURL, err = devToolsVersion(ctx, s.addr())
		return err
	})
	if err != nil {
		p.stop(syscall.SIGKILL, time.Second)
		os.RemoveAll(dir)
		return nil, err
	}
	s.p = p
	return s, nil
}

// ChromiumBinary returns the browser StartChromium runs: $SCALEKIT_CHROMIUM,
// or the first of chromium, chromium-browser, google-chrome and
// google-chrome-stable on PATH or in /usr/bin; or an error wrapping
// ErrMissingBinary saying what to install. A test can call it first, to
// skip before it starts anything else.
func ChromiumBinary() (string, error) {
	if bin := os.Getenv(ChromiumEnv); bin != "" {
		if st, err := os.Stat(bin); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return bin, nil
		}
		return "", fmt.Errorf("%w: %s=%s is not an executable file", ErrMissingBinary, ChromiumEnv, bin)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if bin, err := lookBinary(name, "/usr/bin"); err == nil {
			return bin, nil
		}
	}
	return "", fmt.Errorf("%w: chromium (install it, e.g. apt-get install chromium, or set %s to a Chromium or Chrome binary)", ErrMissingBinary, ChromiumEnv)
}

// devToolsPort reads the port Chromium chose from the DevToolsActivePort
// file it writes in its profile (the port, then the browser's path).
func devToolsPort(profile string) (int, error) {
	b, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || port <= 0 {
		return 0, fmt.Errorf("DevToolsActivePort holds %q, not a port", b)
	}
	return port, nil
}

// devToolsVersion asks the DevTools HTTP endpoint for the browser's
// WebSocket URL (GET /json/version).
func devToolsVersion(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/json/version", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var v struct {
		URL string `json:"webSocketDebuggerUrl"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return "", fmt.Errorf("GET /json/version: %w", err)
	}
	if !strings.HasPrefix(v.URL, "ws://") {
		return "", errors.New("GET /json/version has no webSocketDebuggerUrl")
	}
	return v.URL, nil
}

// DevToolsURL is the browser's DevTools WebSocket URL
// (ws://127.0.0.1:port/devtools/browser/id), what a DevTools client
// connects to, e.g. chromedp.NewRemoteAllocator(ctx, s.DevToolsURL()).
func (s *ChromiumServer) DevToolsURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wsURL
}

// Close stops Chromium and its child processes (SIGKILL: a test browser
// has nothing to save) and removes its profile. It is idempotent.
func (s *ChromiumServer) Close() error { return s.closeDir(s.dir) }
