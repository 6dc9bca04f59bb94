package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// email: POST /emails; keeps the first jobs' status URLs for the report.
func (g *generator) email(ctx context.Context, vu *vuser, uid int) result {
	body, _ := json.Marshal(map[string]string{"to": fmt.Sprintf("user%d@example.com", uid), "subject": "loadgen"})
	r := vu.send(ctx, g, http.MethodPost, "/emails", body)
	if r.err != nil || r.status != http.StatusAccepted {
		return r
	}
	var out struct {
		JobID     string `json:"job_id"`
		StatusURL string `json:"status_url"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil || out.JobID == "" || !strings.HasPrefix(out.StatusURL, "/") {
		r.problem, r.detail = "202 without a job", "POST /emails: "+excerpt(r.body)
		return r
	}
	g.mu.Lock()
	if len(g.jobURLs) < g.cfg.JobSample {
		g.jobURLs = append(g.jobURLs, out.StatusURL)
	}
	g.mu.Unlock()
	return r
}

// lookUpJobs GETs the sampled email jobs once and counts their states.
func (g *generator) lookUpJobs(ctx context.Context) []string {
	g.mu.Lock()
	urls := slices.Clone(g.jobURLs)
	g.mu.Unlock()
	if len(urls) == 0 {
		return nil
	}
	states := map[string]int{}
	attempts, withError := 0, 0
	for _, u := range urls {
		rctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
		r := g.send(rctx, g.admin, http.MethodGet, u, nil)
		cancel()
		var j struct {
			ID        string `json:"id"`
			State     string `json:"state"`
			Attempts  int    `json:"attempts"`
			LastError string `json:"last_error"`
		}
		switch {
		case r.err != nil:
			states["(no answer: "+errClass(r.err)+")"]++
		case r.status != http.StatusOK:
			states[fmt.Sprintf("(GET %d)", r.status)]++
		case json.Unmarshal(r.body, &j) != nil || j.State == "":
			states["(unreadable)"]++
		default:
			states[j.State]++
			attempts += j.Attempts
			if j.LastError != "" {
				withError++
			}
		}
	}
	var parts []string
	for _, st := range sortedKeys(states) {
		parts = append(parts, fmt.Sprintf("%s %d", st, states[st]))
	}
	return []string{
		fmt.Sprintf("the first %d jobs, looked up now: %s", len(urls), strings.Join(parts, ", ")),
		fmt.Sprintf("attempts %d in all; %d with a last_error", attempts, withError),
	}
}
