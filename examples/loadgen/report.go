package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type reasonCount struct {
	Kind    kind
	Outcome outcome
	Reason  string
	Count   int64
}

type replayStats struct {
	Sent, Compared, Identical, BodyDiffers, StatusDiffers, NoHeader int64
	Overtook                                                        int64 // the replay ran first; the original got the stored answer
	NotCompared                                                     map[string]int64
}

type phaseStats struct {
	Name                     string
	From, To                 time.Duration
	OK, Expected, Unexpected int64
	Latency                  latencyStats
}

// summary is a run's numbers; the report prints them.
type summary struct {
	Interrupted          bool
	Scheduled, Elapsed   time.Duration // how long requests were started; until the last one ended
	MaxLag               time.Duration // the scheduler's worst lateness
	Sent, Dropped        int64         // started; due but dropped (client overload)
	Completed, Canceled  int64         // got an answer or an error; cut short by an interrupt
	OK, Expected         int64
	Unexpected           int64
	Latency              [numKinds + 1]latencyStats // by kind; [allKinds] is all
	Status               [numKinds]map[int]int64    // status code (0: no response) -> count
	Reasons              []reasonCount              // expected and unexpected outcomes
	Samples              []string                   // the first unexpected errors in detail
	Replays              replayStats
	RYWChecked, RYWStale int64
	RYWReadBacks         int64 // of RYWChecked: the read-backs right after a write
	RateLimited          int64
	NoRetryAfter         int64 // 429s without Retry-After
	NoRateLimitHeader    int64 // 429s without any RateLimit* header
	Phases               []phaseStats
	Events               []string
	Jobs                 []string // lines about the sampled email jobs
	AdminStats           []string // "field value" lines
	SLO                  []string // /slo, indented and truncated
}

func (g *generator) summarize(scheduled, elapsed time.Duration, interrupted bool) summary {
	s := summary{
		Interrupted:  interrupted,
		Scheduled:    scheduled,
		Elapsed:      elapsed,
		MaxLag:       g.maxLag,
		Sent:         g.sent.Load(),
		Dropped:      g.dropped.Load(),
		Canceled:     g.canceled.Load(),
		OK:           g.ok.Load(),
		Expected:     g.expected.Load(),
		Unexpected:   g.unexpected.Load(),
		RYWChecked:   g.ryw.checked.Load(),
		RYWStale:     g.ryw.stale.Load(),
		RYWReadBacks: g.ryw.readBacks.Load(),
		RateLimited:  g.limited.total.Load(),

		NoRetryAfter:      g.limited.noRetryAfter.Load(),
		NoRateLimitHeader: g.limited.noRateLimit.Load(),
	}
	s.Completed = g.done.Load() - s.Canceled
	for k := range numKinds {
		s.Latency[k] = g.lat[k].snapshot().stats()
		s.Status[k] = map[int]int64{}
		for code := range g.status[k] {
			if n := g.status[k][code].Load(); n > 0 {
				s.Status[k][code] = n
			}
		}
	}
	s.Latency[allKinds] = g.all.snapshot().stats()
	s.Replays = replayStats{
		Sent: g.replay.sent.Load(), Compared: g.replay.compared.Load(), Identical: g.replay.identical.Load(),
		BodyDiffers: g.replay.bodyDiffers.Load(), StatusDiffers: g.replay.statusDiffers.Load(), NoHeader: g.replay.noHeader.Load(),
		Overtook: g.replay.overtook.Load(),
	}
	if g.cfg.ChaosStop != "" {
		bounds := [4]time.Duration{0, g.cfg.ChaosAt, g.cfg.ChaosUntil, g.cfg.Duration}
		for i := range g.phases {
			p := &g.phases[i]
			s.Phases = append(s.Phases, phaseStats{Name: phaseNames[i], From: bounds[i], To: bounds[i+1],
				OK: p.ok.Load(), Expected: p.expected.Load(), Unexpected: p.unexpected.Load(), Latency: p.lat.snapshot().stats()})
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for key, n := range g.reasons {
		s.Reasons = append(s.Reasons, reasonCount{key.kind, key.outcome, key.reason, n})
	}
	slices.SortFunc(s.Reasons, func(a, b reasonCount) int {
		if a.Kind != b.Kind {
			return int(a.Kind - b.Kind)
		}
		return int(b.Count - a.Count)
	})
	s.Samples = slices.Clone(g.samples)
	s.Replays.NotCompared = maps.Clone(g.notCompared)
	s.Events = slices.Clone(g.events)
	return s
}

func writeReport(w io.Writer, cfg config, s summary) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("\n== report ==\n")
	if s.Interrupted {
		p("INTERRUPTED after %.1fs: the numbers cover what ran\n", s.Scheduled.Seconds())
	}
	p("requests    %d sent, %d completed, %d dropped (client overload), %d canceled\n", s.Sent, s.Completed, s.Dropped, s.Canceled)
	p("throughput  %.1f req/s started (target %g), %.1f req/s completed (%d in %.2fs)\n",
		float64(s.Sent)/s.Scheduled.Seconds(), cfg.Rate, float64(s.Completed)/s.Elapsed.Seconds(), s.Completed, s.Elapsed.Seconds())
	p("scheduler   latency counts from each request's intended start; worst start lateness %s\n", fmtDur(s.MaxLag))
	if s.Dropped > 0 {
		p("WARNING     %d requests were due while %d were in flight and were dropped: the offered load was lower than asked\n", s.Dropped, cfg.MaxInflight)
	}
	p("outcomes    %d ok, %d expected, %d unexpected\n", s.OK, s.Expected, s.Unexpected)

	p("\nlatency\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  %-9s\tcount\tp50\tp95\tp99\tmax\t\n", "")
	row := func(name string, l latencyStats) {
		fmt.Fprintf(tw, "  %-9s\t%d\t%s\t%s\t%s\t%s\t\n", name, l.Count, fmtDur(l.P50), fmtDur(l.P95), fmtDur(l.P99), fmtDur(l.Max))
	}
	row("all", s.Latency[allKinds])
	for k := range numKinds {
		if s.Latency[k].Count > 0 {
			row(k.String(), s.Latency[k])
		}
	}
	tw.Flush()

	p("\nstatus codes\n")
	for k := range numKinds {
		if len(s.Status[k]) == 0 {
			continue
		}
		var parts []string
		for _, code := range sortedKeys(s.Status[k]) {
			name := strconv.Itoa(code)
			if code == 0 {
				name = "none"
			}
			parts = append(parts, fmt.Sprintf("%s=%d", name, s.Status[k][code]))
		}
		p("  %-9s %s\n", k, strings.Join(parts, " "))
	}

	reasons := func(title string, o outcome) {
		p("\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		n := 0
		for _, r := range s.Reasons {
			if r.Outcome == o {
				fmt.Fprintf(tw, "  %s\t%s\t%d\n", r.Kind, r.Reason, r.Count)
				n++
			}
		}
		tw.Flush()
		if n == 0 {
			p("  none\n")
		}
	}
	reasons("expected outcomes (not errors)", outcomeExpected)
	reasons("UNEXPECTED errors", outcomeUnexpected)
	if len(s.Samples) > 0 {
		p("  the first %d, by intended start:\n", len(s.Samples))
		for _, l := range s.Samples {
			p("    %s\n", l)
		}
	}

	r := s.Replays
	p("\npayment replays (same Idempotency-Key and body)\n")
	p("  sent %d, compared %d: identical %d, body differs %d, status differs %d, without Idempotent-Replayed: true %d\n",
		r.Sent, r.Compared, r.Identical, r.BodyDiffers, r.StatusDiffers, r.NoHeader)
	if r.Overtook > 0 {
		p("  %d replays overtook their original (the replay ran; the original got the stored answer)\n", r.Overtook)
	}
	if len(r.NotCompared) > 0 {
		var parts []string
		for _, k := range sortedKeys(r.NotCompared) {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.NotCompared[k]))
		}
		p("  not compared: %s\n", strings.Join(parts, ", "))
	}

	p("\nread-your-writes\n")
	if s.RYWChecked == 0 {
		p("  not checked: no read of a user this client had written returned (writes must return \"version\")\n")
	} else {
		p("  %d reads of users the same client wrote before (%d of them read-backs right after the write): %d stale\n", s.RYWChecked, s.RYWReadBacks, s.RYWStale)
	}

	if s.RateLimited > 0 {
		p("\nrate limiting\n  %d answered 429: %d without Retry-After, %d without RateLimit headers\n",
			s.RateLimited, s.NoRetryAfter, s.NoRateLimitHeader)
	}

	if len(s.Events) > 0 || len(s.Phases) > 0 {
		p("\nchaos\n")
		for _, e := range s.Events {
			p("  %s\n", e)
		}
		if len(s.Phases) > 0 {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintf(tw, "  %-13s\tfrom\tto\tok\texpected\tunexpected\tp50\tp99\t\n", cfg.ChaosStop)
			for _, ph := range s.Phases {
				fmt.Fprintf(tw, "  %-13s\t%v\t%v\t%d\t%d\t%d\t%s\t%s\t\n", ph.Name, ph.From, ph.To, ph.OK, ph.Expected, ph.Unexpected,
					fmtDur(ph.Latency.P50), fmtDur(ph.Latency.P99))
			}
			tw.Flush()
		}
	}

	if len(s.Jobs) > 0 {
		p("\nemail jobs\n")
		for _, l := range s.Jobs {
			p("  %s\n", l)
		}
	}
	p("\n/admin/stats\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, l := range s.AdminStats {
		fmt.Fprintf(tw, "  %s\n", l)
	}
	tw.Flush()
	p("\n/slo\n")
	for _, l := range s.SLO {
		p("  %s\n", l)
	}

	if s.Unexpected > 0 {
		p("\nRESULT: FAIL, %d unexpected errors\n", s.Unexpected)
	} else {
		p("\nRESULT: PASS, no unexpected errors\n")
	}
}
