package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// config is what one run does. defaultConfig holds the flags' defaults;
// run validates and uses the values as given (no zero-value defaults).
type config struct {
	URL            string        // the service's base URL; loopback only unless AllowRemote
	Duration       time.Duration // how long requests are started
	Rate           float64       // requests started per second
	Mix            mix           // the share of each kind of request
	Timeout        time.Duration // per request, from when it is sent
	Users          int           // user ids are drawn from 1..Users
	MaxInflight    int           // a request due while this many are in flight is dropped
	ReplayFraction float64       // the share of payments that re-send an earlier key and body

	SetProviderFail bool    // POST /admin/chaos?provider_fail=ProviderFail before the load
	ProviderFail    float64 // in [0, 1]

	ChaosStop  string        // "", "replica" or "redis": stopped at ChaosAt, started at ChaosUntil
	ChaosAt    time.Duration // in (0, ChaosUntil)
	ChaosUntil time.Duration // in (ChaosAt, Duration]

	Quiet         bool          // no progress lines
	AllowRemote   bool          // allow a target that is not loopback
	ProgressEvery time.Duration // the interval between progress lines
	JobSample     int           // how many email jobs are looked up at the end
}

func defaultConfig() config {
	m, _ := parseMix("reads=80,writes=10,payments=10")
	return config{
		URL:            "http://127.0.0.1:8080",
		Duration:       30 * time.Second,
		Rate:           500,
		Mix:            m,
		Timeout:        5 * time.Second,
		Users:          1000,
		MaxInflight:    2000,
		ReplayFraction: 0.05,
		ProgressEvery:  time.Second,
		JobSample:      50,
	}
}

// parseFlags reads the command line into a config and validates it. On
// error it has already told stderr what is wrong.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: go run -C examples ./loadgen [flags]\n\nOpen-loop load against examples/service; exits 1 on unexpected errors.\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.URL, "url", cfg.URL, "the service's base URL (loopback only unless -allow-remote)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "how long to start requests")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "requests started per second (open loop: whatever the latency)")
	mixFlag := fs.String("mix", cfg.Mix.String(), "weights of reads, writes, posts, payments and emails")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout")
	fs.IntVar(&cfg.Users, "users", cfg.Users, "user ids are drawn from 1..N (the service seeds 1..1000)")
	fs.IntVar(&cfg.MaxInflight, "max-inflight", cfg.MaxInflight, "requests in flight at most; one due beyond it is counted as dropped (client overload)")
	fs.Float64Var(&cfg.ReplayFraction, "replay-fraction", cfg.ReplayFraction, "share of payments that re-send an earlier Idempotency-Key and body")
	providerFail := fs.Float64("chaos-provider-fail", -1, "set the payment provider's failure rate (0..1) before the load; -1 leaves it as is")
	fs.StringVar(&cfg.ChaosStop, "chaos-stop", "", "replica or redis: stop it at -chaos-at and start it again at -chaos-until")
	fs.DurationVar(&cfg.ChaosAt, "chaos-at", 0, "when -chaos-stop stops its target (default half of -duration)")
	fs.DurationVar(&cfg.ChaosUntil, "chaos-until", 0, "when -chaos-stop starts its target again (default 3/4 of -duration)")
	fs.BoolVar(&cfg.Quiet, "quiet", false, "no progress lines, only the report")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a target that is not 127.0.0.1/localhost")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	fail := func(err error) (config, error) {
		fmt.Fprintln(stderr, "loadgen:", err)
		return cfg, err
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected arguments %q; every setting is a flag (-h lists them)", fs.Args()))
	}
	m, err := parseMix(*mixFlag)
	if err != nil {
		return fail(err)
	}
	cfg.Mix = m
	switch {
	case *providerFail == -1:
	case *providerFail >= 0 && *providerFail <= 1:
		cfg.SetProviderFail, cfg.ProviderFail = true, *providerFail
	default:
		return fail(fmt.Errorf("-chaos-provider-fail must be in [0, 1], or -1 to leave it as is, got %g", *providerFail))
	}
	if cfg.ChaosStop != "" {
		if cfg.ChaosAt == 0 {
			cfg.ChaosAt = cfg.Duration / 2
		}
		if cfg.ChaosUntil == 0 {
			cfg.ChaosUntil = cfg.Duration * 3 / 4
		}
	}
	if err := cfg.validate(); err != nil {
		return fail(err)
	}
	return cfg, nil
}

// validate says what to fix, naming the flag.
func (c config) validate() error {
	if _, err := targetURL(c.URL, c.AllowRemote); err != nil {
		return err
	}
	switch {
	case c.Duration <= 0:
		return fmt.Errorf("-duration must be > 0, got %v", c.Duration)
	case !(c.Rate > 0 && c.Rate <= 1e6):
		return fmt.Errorf("-rate must be in (0, 1e6] requests per second, got %g", c.Rate)
	case c.Mix.total() == 0:
		return errors.New("-mix: at least one weight must be positive")
	case c.Timeout <= 0:
		return fmt.Errorf("-timeout must be > 0, got %v", c.Timeout)
	case c.Users < 1:
		return fmt.Errorf("-users must be >= 1, got %d", c.Users)
	case c.MaxInflight < 1:
		return fmt.Errorf("-max-inflight must be >= 1, got %d", c.MaxInflight)
	case !(c.ReplayFraction >= 0 && c.ReplayFraction <= 1):
		return fmt.Errorf("-replay-fraction must be in [0, 1], got %g", c.ReplayFraction)
	case c.SetProviderFail && !(c.ProviderFail >= 0 && c.ProviderFail <= 1):
		return fmt.Errorf("-chaos-provider-fail must be in [0, 1], got %g", c.ProviderFail)
	case c.ProgressEvery <= 0:
		return fmt.Errorf("the progress interval must be > 0, got %v", c.ProgressEvery)
	case c.JobSample < 0:
		return fmt.Errorf("the job sample must be >= 0, got %d", c.JobSample)
	}
	for _, w := range c.Mix {
		if w < 0 {
			return errors.New("-mix: weights must be non-negative")
		}
	}
	switch c.ChaosStop {
	case "":
		if c.ChaosAt != 0 || c.ChaosUntil != 0 {
			return errors.New("-chaos-at and -chaos-until need -chaos-stop replica|redis")
		}
	case "replica", "redis":
		if !(c.ChaosAt > 0 && c.ChaosAt < c.ChaosUntil && c.ChaosUntil <= c.Duration) {
			return fmt.Errorf("-chaos-at (%v) and -chaos-until (%v) must satisfy 0 < at < until <= -duration (%v)", c.ChaosAt, c.ChaosUntil, c.Duration)
		}
	default:
		return fmt.Errorf("-chaos-stop must be replica or redis, got %q", c.ChaosStop)
	}
	return nil
}

// targetURL parses the base URL and refuses a host that is not loopback
// unless allowRemote.
func targetURL(raw string, allowRemote bool) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return nil, fmt.Errorf("-url must be a base URL like http://127.0.0.1:8080, got %q", raw)
	}
	if h := u.Hostname(); !allowRemote && !isLoopback(h) {
		return nil, fmt.Errorf("-url: %q is not a loopback host; load tests only target 127.0.0.1 or localhost (pass -allow-remote to override)", h)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
