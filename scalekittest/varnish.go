package scalekittest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// VarnishOptions configures StartVarnish. Backend is required.
type VarnishOptions struct {
	// Backend is the origin's host:port (an httptest.Server's address);
	// its host must be an IP address. Required.
	Backend string
	// VCL replaces the configuration; it is formatted with the backend's
	// host and port (two %s). Default: VarnishVCL.
	VCL string
	// Args are extra varnishd arguments appended to the defaults, e.g.
	// []string{"-p", "default_grace=0"}. Default: none.
	Args []string
	// Port is the HTTP port to listen on. Default: 0, a free port.
	Port int
	// StartTimeout bounds the wait for the VCL to compile and the child
	// to answer. Default: 30s.
	StartTimeout time.Duration
}

// VarnishVCL is the default configuration of StartVarnish, with the
// backend's host and port as its two %s: Varnish's built-in caching
// (Cache-Control's s-maxage and max-age for the TTL,
// stale-while-revalidate for the grace, 304s to conditional requests)
// plus the xkey module (Debian's varnish-modules): a response's
// Surrogate-Key field becomes its xkey tags, and a PURGE request from
// 127.0.0.1 with an xkey-purge (or xkey-softpurge) field of
// space-separated keys removes (or marks stale) every object tagged with
// one of them, answering 200 "Invalidated N objects" (httpcache's
// NewVarnishPurger sends exactly that). Responses carry X-Cache: HIT or
// MISS.
const VarnishVCL = `vcl 4.1;
import xkey;

backend origin { .host = "%s"; .port = "%s"; }

acl purgers { "127.0.0.1"; }

sub vcl_recv {
	if (req.method == "PURGE") {
		if (client.ip !~ purgers) {
			return (synth(403, "Forbidden"));
		}
		if (req.http.xkey-purge) {
			set req.http.x-gone = xkey.purge(req.http.xkey-purge);
		} else if (req.http.xkey-softpurge) {
			set req.http.x-gone = xkey.softpurge(req.http.xkey-softpurge);
		} else {
			return (synth(400, "No xkey-purge or xkey-softpurge field"));
		}
		return (synth(200, "Invalidated " + req.http.x-gone + " objects"));
	}
}

sub vcl_backend_response {
	if (beresp.http.Surrogate-Key) {
		set beresp.http.xkey = beresp.http.Surrogate-Key;
	}
}

sub vcl_deliver {
	unset resp.http.xkey;
	if (obj.hits > 0) {
		set resp.http.X-Cache = "HIT";
	} else {
		set resp.http.X-Cache = "MISS";
	}
}
`

// VarnishServer is one varnishd on 127.0.0.1 in front of one backend,
// its working files in its own temp dir, storage in memory (a restart
// empties the cache). It runs with -j none (no privilege separation:
// varnishd refuses root otherwise) and no management port. Its methods
// are safe for concurrent use.
type VarnishServer struct {
	bin     string
	dir     string
	args    []string
	timeout time.Duration

	daemon
}

// StartVarnish writes the VCL for opts.Backend, starts varnishd and
// waits until the child answers a PURGE (the VCL compiled, xkey loaded).
// Close stops it and removes its files. It returns an error wrapping
// ErrMissingBinary when varnishd (PATH, then /usr/sbin) or the xkey
// module (apt-get install varnish-modules) is not installed.
func StartVarnish(ctx context.Context, opts VarnishOptions) (*VarnishServer, error) {
	host, port, err := net.SplitHostPort(opts.Backend)
	if err != nil || net.ParseIP(host) == nil {
		return nil, fmt.Errorf("scalekittest: VarnishOptions.Backend must be ip:port, got %q", opts.Backend)
	}
	bin, dir, err := prepare("varnishd", "scalekit-varnish-*", "/usr/sbin", "/usr/local/sbin")
	if err != nil {
		return nil, err
	}
	vcl := opts.VCL
	if vcl == "" {
		vcl = VarnishVCL
	}
	vclPath := filepath.Join(dir, "default.vcl")
	if err := os.WriteFile(vclPath, []byte(fmt.Sprintf(vcl, host, port)), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("scalekittest: write VCL: %w", err)
	}
	s := &VarnishServer{daemon: daemon{what: "varnishd"}, bin: bin, dir: dir, timeout: opts.StartTimeout,
		args: append([]string{"-f", vclPath}, opts.Args...)}
	if s.timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	if err := s.bind(opts.Port, func() error { return s.start(ctx) }); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "varnishd.log"))
		os.RemoveAll(dir)
		if strings.Contains(string(log), "Could not find VMOD xkey") || strings.Contains(string(log), "Could not load VMOD xkey") {
			return nil, fmt.Errorf("%w: Varnish's xkey module (install it, e.g. apt-get install varnish-modules)", ErrMissingBinary)
		}
		return nil, err
	}
	return s, nil
}

func (s *VarnishServer) start(ctx context.Context) error {
	// -F: foreground; -j none: no jail (root is refused otherwise); -T
	// none: no management port; -n: the working dir (shared memory log)
	// in the temp dir; small thread pools and log for a test machine.
	args := []string{"-F", "-j", "none", "-T", "none", "-n", filepath.Join(s.dir, "n"), "-a", s.addr(),
		"-s", "malloc,64m", "-p", "thread_pools=1", "-p", "thread_pool_min=8", "-p", "thread_pool_max=200",
		"-p", "vsl_space=2M"}
	args = append(args, s.args...)
	return s.launch(ctx, s.timeout, s.bin, filepath.Join(s.dir, "varnishd.log"), args, func(ctx context.Context) error { return varnishReady(ctx, s.addr()) })
}

// varnishReady sends a PURGE of a key nothing carries: the VCL answers
// 200 itself once the child runs, without calling the backend.
func varnishReady(ctx context.Context, addr string) error {
	c, err := probe(ctx, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "PURGE / HTTP/1.1\r\nHost: %s\r\nxkey-purge: scalekittest-ready\r\nConnection: close\r\n\r\n", addr); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("varnishd answered PURGE with " + resp.Status)
	}
	return nil
}

// URL is the http:// URL of the Varnish, with a trailing slash.
func (s *VarnishServer) URL() string { return "http://" + s.Addr() + "/" }

// Stop shuts varnishd down (SIGTERM); the cache is lost. Start brings it
// back on the same port and VCL.
func (s *VarnishServer) Stop() error {
	s.halt(syscall.SIGTERM, 10*time.Second, false)
	return nil
}

// Start restarts a stopped Varnish and waits for it to answer. Starting a
// running server is a no-op.
func (s *VarnishServer) Start(ctx context.Context) error { return s.restart(ctx, s.start) }

// Close stops varnishd and removes its files. It is idempotent.
func (s *VarnishServer) Close() error { return s.closeDir(s.dir) }
