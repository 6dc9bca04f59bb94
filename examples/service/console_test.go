package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"testing"
	"time"
)

// TestConsole mounts the operations page on real servers: without the
// bearer token it is 401; with it the overview lists the provider's
// breaker (green), and once chaos makes the provider fail and payments
// open the breaker, the overview shows it red, "open".
func TestConsole(t *testing.T) {
	const token = "test-console-token"
	// Without the pipeline's adaptive throttler, which, with no accepted
	// charge yet, would refuse most failing payments before the breaker
	// counts them: the breaker then opens after its first 20 calls.
	base, _ := startService(t, io.Discard, func(c *Config) { c.ConsoleToken, c.NoPipeline = token, true })
	client := &http.Client{Timeout: 10 * time.Second}
	get := func(auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/admin/", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET /admin/: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, auth := range []string{"", "Bearer wrong", token} {
		if code, body := get(auth); code != http.StatusUnauthorized || regexp.MustCompile(`provider`).MatchString(body) {
			t.Fatalf("Authorization %q: %d, want 401 and no content; %s", auth, code, body)
		}
	}
	row := func(level string) *regexp.Regexp {
		return regexp.MustCompile(fmt.Sprintf(`<tr class="row-%s"><td><span class="state %[1]s">%[1]s</span></td><td>breaker</td><td><a href="breakers">provider</a></td><td>%s`,
			level, map[string]string{"green": "closed", "red": "open: calls rejected"}[level]))
	}
	code, body := get("Bearer " + token)
	if code != http.StatusOK || !row("green").MatchString(body) {
		t.Fatalf("GET /admin/ with the token: %d, want 200 with the provider's breaker closed (green):\n%s", code, body)
	}
	for _, want := range []string{`>users</`, `>jobs / emails</`, `>service / readiness</`, `>db</`} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(body) {
			t.Errorf("the overview lacks %s", want)
		}
	}

	// The provider fails every charge: payments open its breaker (20
	// calls, half failing). It probes again after 2s (and reopens), so
	// keep paying until a render catches it open.
	setChaos(t, client, base, "provider_fail=1")
	var n int
	eventually(t, 60*time.Second, "the overview showing the provider's breaker open (red)", func() bool {
		for range 5 {
			n++
			pay(client, base, fmt.Sprintf("console-%d", n), false)
		}
		_, body = get("Bearer " + token)
		return row("red").MatchString(body)
	})
}
