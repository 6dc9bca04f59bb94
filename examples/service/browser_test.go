package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/remote"

	"github.com/scalekit-go/scalekit/scalekittest"
)

// The browser tests drive a real headless Chromium (Debian's chromium
// package) through chromedp. scalekittest.StartChromium starts the
// browser (and skips the test when it is missing, failing instead under
// SCALEKIT_REQUIRE_SERVERS=1); chromedp, the DevTools client, lives here,
// in the examples' module, so the core module does not depend on it.

// browserTab is one tab of a headless Chromium that sends header (e.g.
// Authorization) with every request it makes, and counts the pages it
// loaded.
type browserTab struct {
	t     *testing.T
	ctx   context.Context
	loads atomic.Int64 // load events: navigations and the page's own reloads
	shots string       // the screenshots' directory
	shot  int
}

// startBrowser starts Chromium in the background (it takes a second or
// two, as long as a test's servers: start it first) and returns the func
// that waits for it and opens a tab sending header: value with every
// request, its page 1280x800 CSS pixels. A missing Chromium skips the
// test at once (fails it under SCALEKIT_REQUIRE_SERVERS=1). Everything
// stops at the test's cleanup.
func startBrowser(t *testing.T) (openTab func(header, value string) *browserTab) {
	t.Helper()
	if _, err := scalekittest.ChromiumBinary(); err != nil {
		skipOrFail(t, err) // before the test starts its servers
	}
	type started struct {
		s   *scalekittest.ChromiumServer
		err error
	}
	ch := make(chan started, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := scalekittest.StartChromium(ctx, scalekittest.ChromiumOptions{})
		ch <- started{s, err}
	}()
	var once sync.Once
	var got started
	wait := func() started {
		once.Do(func() { got = <-ch })
		return got
	}
	t.Cleanup(func() {
		if r := wait(); r.s != nil {
			r.s.Close()
		}
	})
	return func(header, value string) *browserTab {
		t.Helper()
		r := wait()
		if r.err != nil {
			skipOrFail(t, r.err)
		}
		actx, acancel := remote.NewAllocator(context.Background(), r.s.DevToolsURL(), remote.NoModifyURL)
		tctx, tcancel := chromedp.NewContext(actx)
		t.Cleanup(func() { tcancel(); acancel() }) // before Close: cleanups run last registered first
		b := &browserTab{t: t, ctx: tctx}
		if err := chromedp.Listen(tctx, func(ev any) {
			if _, ok := ev.(*page.EventLoadEventFired); ok {
				b.loads.Add(1)
			}
		}); err != nil {
			t.Fatalf("open a tab: %v", err)
		}
		b.do("set up the tab", 30*time.Second,
			chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
				if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
					return err
				}
				_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{header: value}})
				return err
			}),
			chromedp.EmulateViewport(1280, 800))
		return b
	}
}

// do runs steps in the tab within timeout, failing the test with what
// they were for.
func (b *browserTab) do(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// run runs an action returning a value in the tab within timeout.
func run[T any](b *browserTab, what string, timeout time.Duration, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// eval evaluates the JavaScript expression js in the page.
func eval[T any](b *browserTab, js string) T {
	b.t.Helper()
	return run(b, "evaluate "+js, 10*time.Second, chromedp.Evaluate[T](js))
}

// clickFresh loads url and clicks the element sel selects, at once: a
// page reloads itself (a meta refresh), and a reload racing the click
// could cancel the form's POST, so the click comes right after a load,
// seconds before the next reload.
func (b *browserTab) clickFresh(url, sel string) {
	b.t.Helper()
	b.do("open "+url+" and click "+sel, 30*time.Second, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// waitJS waits until the JavaScript expression js is true in the page,
// across navigations and the page's own reloads (an evaluation in a page
// being replaced fails and is tried again), and fails the test naming
// what it waited for after timeout.
func (b *browserTab) waitJS(what string, timeout time.Duration, js string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	var last error
	for {
		ectx, ecancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(ectx, chromedp.Evaluate[bool](js))
		ecancel()
		if last = err; err == nil && ok {
			return
		}
		select {
		case <-ctx.Done():
			uctx, ucancel := context.WithTimeout(b.ctx, 2*time.Second)
			url, _ := chromedp.Run(uctx, chromedp.Location())
			ucancel()
			b.t.Fatalf("not within %v: %s (page %s; last evaluation error: %v)", timeout, what, url, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// screenshot writes a PNG of the whole page to the screenshots'
// directory, $SCALEKIT_SCREENSHOTS or a new temp dir kept after the test
// (for a person to look at), and logs its path.
func (b *browserTab) screenshot(name string) {
	b.t.Helper()
	if b.shots == "" {
		b.shots = os.Getenv("SCALEKIT_SCREENSHOTS")
		if b.shots == "" {
			dir, err := os.MkdirTemp("", "scalekit-console-screenshots-*")
			if err != nil {
				b.t.Fatal(err)
			}
			b.shots = dir
		} else if err := os.MkdirAll(b.shots, 0o755); err != nil {
			b.t.Fatal(err)
		}
	}
	png := run(b, "screenshot "+name, 20*time.Second, chromedp.FullScreenshot(100))
	b.shot++
	path := filepath.Join(b.shots, fmt.Sprintf("%02d-%s.png", b.shot, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
}
