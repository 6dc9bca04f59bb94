package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// xssPayload is a recipient address that, rendered as HTML, would run
// script twice over: in a script element and in an image's error handler.
const xssPayload = `<script>window.__xss=1</script><img src=x onerror="window.__xss=2">`

// TestConsoleInBrowser drives a headless Chromium through the operations
// page of the service on real servers (Redis, PostgreSQL primary and
// replica): the overview shows every primitive buildConsole added; the
// provider's breaker, opened by chaos, turns red by the page's own
// reload; a dead email job, whose error holds an XSS payload, shows the
// payload as text with no script run, and is requeued by a click and
// completes; pausing the emails queue by a click stops its processing
// until a click resumes it; a cross-site POST gets 403 and a request
// without the token 401. Screenshots of the pages are written to a temp
// dir, or $SCALEKIT_SCREENSHOTS, and their paths logged.
func TestConsoleInBrowser(t *testing.T) {
	start := time.Now()
	const token = "browser-console-token"
	var logs jsonLog
	openTab := startBrowser(t)
	// Without the pipeline's adaptive throttler (see TestConsole): the
	// breaker opens after its first 20 failing calls.
	base, _ := startService(t, &logs, func(c *Config) { c.ConsoleToken, c.NoPipeline = token, true })
	t.Logf("service up after %v", time.Since(start).Round(time.Millisecond))
	console := base + "/admin/"
	b := openTab("Authorization", "Bearer "+token)
	client := &http.Client{Timeout: 10 * time.Second}
	t.Logf("service and browser up after %v", time.Since(start).Round(time.Millisecond))

	// The overview: one row per primitive buildConsole added, in the
	// order added (the SLO tracker's rows are its objectives for the
	// routes seen so far: none but "other").
	want := [][]string{{"health", "service / readiness"}, {"health", "service / liveness"}, {"breaker", "provider"}, {"cache", "users"}, {"batch", "authors"}}
	for _, q := range []string{"emails", "invalidations", "ledger", "maintenance", "receipts"} { // the worker's queues, by name
		want = append(want, []string{"worker", "worker / " + q})
	}
	for _, q := range countedQueues {
		want = append(want, []string{"queue", "jobs / " + q})
	}
	want = append(want, []string{"idempotency", "payments"}, []string{"SLO", "other availability"}, []string{"SLO", "other latency"}, []string{"dbrouter", "db"}, []string{"limiter", "clients"})
	b.do("open the overview", 30*time.Second, chromedp.Navigate(console), chromedp.WaitVisible(chromedp.CSS("main table tbody tr")))
	rows := eval[[][]string](b, `Array.from(document.querySelectorAll("main tbody tr")).map(r => [r.cells[1].textContent, r.cells[2].textContent, r.className])`)
	var got [][]string
	for _, r := range rows {
		got = append(got, r[:2])
		if r[0] == "breaker" && r[2] != "row-green" {
			t.Fatalf("the provider's breaker is %s before any payment, want green", r[2])
		}
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("overview rows (kind, name):\n%q\nwant what buildConsole added:\n%q", got, want)
	}
	b.screenshot("overview")

	// Chaos makes the provider fail every charge; payments open its
	// breaker (20 calls). Open stays open until the next call, and none
	// comes. The page, left alone, reloads itself (a meta refresh every
	// 5s): the reload after the breaker opened shows it red. The reload
	// under way when it opened may still show green, so at most two loads.
	setChaos(t, client, base, "provider_fail=1")
	for n := 0; breakerState(t, client, base) != "open"; n++ {
		if n == 200 {
			t.Fatal("the provider's breaker is not open after 200 failing payments")
		}
		pay(client, base, fmt.Sprintf("browser-%d", n), false)
	}
	setChaos(t, client, base, "provider_fail=0")
	loads := b.loads.Load()
	b.waitJS("the provider's breaker red on the overview, by the page's own reload", 30*time.Second,
		`Array.from(document.querySelectorAll("main tbody tr")).some(r => r.cells[1].textContent == "breaker" && r.cells[2].textContent == "provider" && r.className == "row-red" && r.cells[3].textContent.startsWith("open"))`)
	if n := b.loads.Load() - loads; n > 2 {
		t.Errorf("the breaker showed red after %d reloads, want within one refresh (2 loads at most)", n)
	}
	b.screenshot("overview-breaker-open")
	t.Logf("breaker red after %v", time.Since(start).Round(time.Millisecond))

	// A dead job: the mail server rejects the message (chaos), its error
	// naming the recipient, an XSS payload.
	setChaos(t, client, base, "mail_reject=1")
	dead := sendEmail(t, client, base, xssPayload)
	eventually(t, 20*time.Second, "the rejected email's job dead", func() bool { return jobState(t, client, base, dead) == "dead" })
	setChaos(t, client, base, "mail_reject=0")
	requeue := fmt.Sprintf(`#queue-jobs-emails [data-action="requeue"][data-job=%q]`, dead)
	b.do("follow the overview's link to the queues page", 30*time.Second, chromedp.Click(chromedp.CSS(`a[href="queues"]`)),
		chromedp.WaitVisible(chromedp.CSS(requeue)))
	payload, _ := json.Marshal(xssPayload)
	if !eval[bool](b, `document.querySelector("#queue-jobs-emails").textContent.includes(`+string(payload)+`)`) {
		t.Errorf("the emails queue's section does not show the error %s as text: %s", payload, eval[string](b, `document.querySelector("#queue-jobs-emails").textContent`))
	}
	if n := eval[int](b, `document.querySelectorAll("main script, main img").length`); n != 0 {
		t.Errorf("the page has %d script or img elements in main: the job's error was not escaped", n)
	}
	if got := eval[string](b, `typeof window.__xss`); got != "undefined" {
		t.Errorf("window.__xss is %s: the payload in the job's error ran", got)
	}
	b.screenshot("queues-dead-job")

	// Requeue it with a click: the post/redirect/get lands on
	// queues?done=requeue, the job leaves the dead letters and, the mail
	// server accepting again, completes.
	b.clickFresh(console+"queues", requeue)
	b.waitJS("the requeue done and the job gone from the dead letters", 30*time.Second,
		`location.search.includes("done=requeue") && document.readyState == "complete" && !document.querySelector(`+jsString(requeue)+`)`)
	eventually(t, 20*time.Second, "the requeued job done", func() bool { return jobState(t, client, base, dead) == "done" })

	// Pause the emails queue with a click. Once the worker has read the
	// pause mark (it logs the change), an email enqueued stays pending;
	// a click on resume lets it run.
	pauseSel := `#queue-jobs-emails form[data-queue="emails"] [data-action="pause"]`
	resumeSel := `#queue-jobs-emails form[data-queue="emails"] [data-action="resume"]`
	b.clickFresh(console+"queues", pauseSel)
	b.waitJS("the pause done and a resume button shown", 30*time.Second,
		`location.search.includes("done=pause") && !!document.querySelector(`+jsString(resumeSel)+`)`)
	eventually(t, 20*time.Second, "the worker logging the emails queue paused", func() bool { return pausedLogged(&logs, true) })
	held := sendEmail(t, client, base, "held@example.com")
	b.do("reload the queues page", 30*time.Second, chromedp.Navigate(console+"queues"), chromedp.WaitVisible(chromedp.CSS(resumeSel)))
	b.screenshot("queues-paused")
	if st := jobState(t, client, base, held); st != "pending" {
		t.Fatalf("an email enqueued to the paused queue is %s, want pending", st)
	}
	b.clickFresh(console+"queues", resumeSel)
	b.waitJS("the resume done and a pause button shown", 30*time.Second,
		`location.search.includes("done=resume") && !!document.querySelector(`+jsString(pauseSel)+`)`)
	eventually(t, 20*time.Second, "the held email done after resume", func() bool { return jobState(t, client, base, held) == "done" })

	// Screenshots of every page the navigation links to.
	for _, href := range eval[[]string](b, `Array.from(document.querySelectorAll("header nav a")).map(a => a.getAttribute("href"))`) {
		b.do("open "+href, 30*time.Second, chromedp.Navigate(console+strings.TrimPrefix(href, "./")), chromedp.WaitVisible(chromedp.CSS("main")))
		name := strings.Trim(href, "./")
		if name == "" {
			name = "overview"
		}
		b.screenshot("page-" + name)
	}

	// A cross-site POST is refused (403) with the token, as is one from
	// another origin; one without the token gets 401; the job is still
	// there. The same POST from the same origin deletes it: the refusals
	// were the origin checks'.
	action := console + "queues/action"
	form := url.Values{"client": {"jobs"}, "queue": {"emails"}, "action": {"delete"}, "id": {dead}}.Encode()
	post := func(hdr ...string) int {
		t.Helper()
		req, _ := http.NewRequest("POST", action, strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := (&http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", action, err)
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	auth := "Bearer " + token
	for _, c := range []struct {
		what string
		hdr  []string
		want int
	}{
		{"cross-site (Sec-Fetch-Site)", []string{"Authorization", auth, "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"from another origin", []string{"Authorization", auth, "Origin", "http://evil.example"}, http.StatusForbidden},
		{"without the token", []string{"Sec-Fetch-Site", "same-origin"}, http.StatusUnauthorized},
		{"with a wrong token", []string{"Authorization", "Bearer wrong", "Sec-Fetch-Site", "same-origin"}, http.StatusUnauthorized},
	} {
		if got := post(c.hdr...); got != c.want {
			t.Errorf("POST %s: %d, want %d", c.what, got, c.want)
		}
	}
	if st := jobState(t, client, base, dead); st != "done" {
		t.Fatalf("the job after the refused deletes is %q, want done (still there)", st)
	}
	if got := post("Authorization", auth, "Sec-Fetch-Site", "same-origin"); got != http.StatusSeeOther {
		t.Fatalf("POST from the same origin with the token: %d, want 303", got)
	}
	if st := jobState(t, client, base, dead); st != "" {
		t.Fatalf("the job after the same-origin delete is %q, want gone", st)
	}
	for _, page := range []string{"", "queues", "breakers"} {
		resp, err := client.Get(console + page)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET /admin/%s without the token: %d, want 401", page, resp.StatusCode)
		}
	}
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// breakerState is the provider's breaker state, from /admin/stats.
func breakerState(t *testing.T, client *http.Client, base string) string {
	t.Helper()
	resp, err := client.Get(base + "/admin/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Breaker string `json:"breaker"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("/admin/stats: %v", err)
	}
	return st.Breaker
}

// sendEmail queues an email to to (POST /emails) and returns its job id.
func sendEmail(t *testing.T, client *http.Client, base, to string) string {
	t.Helper()
	body, _ := json.Marshal(Email{To: to, Subject: "console test"})
	resp, err := client.Post(base+"/emails", "application/json", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var accepted struct {
		JobID string `json:"job_id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&accepted); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /emails: %d, %v", resp.StatusCode, err)
	}
	return accepted.JobID
}

// jobState is an email job's state (GET /jobs/{id}), "" when there is no
// such job.
func jobState(t *testing.T, client *http.Client, base, id string) string {
	t.Helper()
	resp, err := client.Get(base + "/jobs/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return ""
	}
	var st jobStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET /jobs/%s: %d, %v", id, resp.StatusCode, err)
	}
	return string(st.State)
}

// pausedLogged reports whether the worker logged the emails queue's pause
// mark changing to paused.
func pausedLogged(logs *jsonLog, paused bool) bool {
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec struct {
			Msg    string `json:"msg"`
			Queue  string `json:"queue"`
			Paused *bool  `json:"paused"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "queue: paused state changed" && rec.Queue == "emails" && rec.Paused != nil && *rec.Paused == paused {
			return true
		}
	}
	return false
}
