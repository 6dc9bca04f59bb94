package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mix
		err  string
	}{
		{in: "reads=80,writes=10,payments=10", want: mix{kindReads: 80, kindWrites: 10, kindPayments: 10}},
		{in: " reads = 70, posts=10,writes=5,payments=10,emails=5 ", want: mix{70, 5, 10, 10, 5}},
		{in: "emails=1,reads=0", want: mix{kindEmails: 1}},
		{in: "", err: "empty"},
		{in: "reads=80,deletes=10", err: `unknown kind "deletes"; known: reads, writes, posts, payments, emails`},
		{in: "replays=5", err: `unknown kind "replays"`},
		{in: "reads=-1,writes=2", err: "must be an integer in [0, 1000000]"},
		{in: "reads=1.5", err: "must be an integer"},
		{in: "reads", err: "not name=weight"},
		{in: "reads=1,", err: "not name=weight"},
		{in: "reads=1,reads=2", err: "given twice"},
		{in: "reads=0,writes=0", err: "at least one weight must be positive"},
	} {
		got, err := parseMix(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseMix(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseMix(%q) error %v, want it to contain %q", tc.in, err, tc.err)
		}
	}
	m := mix{kindReads: 2, kindPayments: 1}
	var picks []kind
	for n := range m.total() {
		picks = append(picks, m.pick(n))
	}
	if want := []kind{kindReads, kindReads, kindPayments}; !slices.Equal(picks, want) || m.String() != "reads=2,payments=1" {
		t.Errorf("picks %v (want %v), String %q", picks, want, m.String())
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(config) bool
		err   string
	}{
		{args: nil, check: func(c config) bool {
			return c.URL == "http://127.0.0.1:8080" && c.Rate == 500 && c.Duration == 30*time.Second && c.MaxInflight == 2000 &&
				c.Timeout == 5*time.Second && c.Users == 1000 && !c.SetProviderFail && c.Mix == mix{80, 10, 0, 10, 0}
		}},
		{args: []string{"-duration", "40s", "-chaos-stop", "replica"}, check: func(c config) bool {
			return c.ChaosAt == 20*time.Second && c.ChaosUntil == 30*time.Second
		}},
		{args: []string{"-chaos-provider-fail", "0.5", "-url", "http://localhost:9000"}, check: func(c config) bool {
			return c.SetProviderFail && c.ProviderFail == 0.5 && c.URL == "http://localhost:9000"
		}},
		{args: []string{"-url", "http://10.0.0.1:8080", "-allow-remote"}, check: func(c config) bool { return c.AllowRemote }},
		{args: []string{"-url", "http://10.0.0.1:8080"}, err: "-allow-remote"},
		{args: []string{"-chaos-provider-fail", "1.5"}, err: "-chaos-provider-fail must be in [0, 1]"},
		{args: []string{"-chaos-stop", "kafka"}, err: "replica or redis"},
		{args: []string{"-chaos-at", "5s"}, err: "need -chaos-stop"},
		{args: []string{"-chaos-stop", "redis", "-chaos-at", "20s", "-chaos-until", "10s"}, err: "0 < at < until"},
		{args: []string{"-rate", "0"}, err: "-rate must be"},
		{args: []string{"-mix", "reads=1,bogus=2"}, err: `unknown kind "bogus"`},
		{args: []string{"-max-inflight", "0"}, err: "-max-inflight"},
		{args: []string{"extra"}, err: "unexpected arguments"},
	} {
		var stderr bytes.Buffer
		cfg, err := parseFlags(tc.args, &stderr)
		switch {
		case tc.err == "" && (err != nil || !tc.check(cfg)):
			t.Errorf("%q: %+v, %v", tc.args, cfg, err)
		case tc.err != "" && (err == nil || !strings.Contains(stderr.String(), tc.err)):
			t.Errorf("%q: err %v, stderr %q; want it to say %q", tc.args, err, stderr.String(), tc.err)
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}
