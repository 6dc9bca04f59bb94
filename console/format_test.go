package console

import (
	"testing"
	"time"
)

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"dial postgres://app:hunter2@db:5432/app":                 "dial postgres://app:[redacted]@db:5432/app",
		"redis://:hunter2@cache:6379/0 refused":                   "redis://:[redacted]@cache:6379/0 refused",
		"host=db user=app password=hunter2 dbname=x":              "host=db user=app password=[redacted] dbname=x",
		"host=db password='hunter 2' sslmode=disable":             "host=db password=[redacted] sslmode=disable",
		`PASSWORD = "hunter2" token=abc`:                          `PASSWORD = [redacted] token=[redacted]`,
		"failed to connect to `user=app database=app`: refused":   "failed to connect to `user=app database=app`: refused",
		"http://example.com/path is fine, so is user@example.com": "http://example.com/path is fine, so is user@example.com",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestUnits(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range [][2]string{
		{relative(now, now.Add(-3*time.Second)), "3 s ago"},
		{relative(now, now.Add(28*time.Second)), "in 28 s"},
		{relative(now, now.Add(-90*time.Minute)), "1.5 h ago"},
		{relative(now, now.Add(200*time.Millisecond)), "now"},
		{duration(0), "0 s"},
		{duration(1500 * time.Millisecond), "1.5 s"},
		{duration(250 * time.Millisecond), "250 ms"},
		{duration(3 * time.Minute), "3 min"},
		{duration(30 * 24 * time.Hour), "30 d"},
		{byteSize(512), "512 B"},
		{byteSize(64 << 20), "64.0 MiB"},
		{byteSize(3 << 30), "3.0 GiB"},
		{percent(0.75), "75 %"},
		{percent(0.999), "99.9 %"},
		{burn(14.4), "14.4x"},
		{burn(999.9), "1000x"},
		{burn(123.4), "123x"},
		{budgetLeft(0.25), "25 %"},
		{budgetLeft(0), "0 %"},
		{budgetLeft(-999), "none: 1000x the budget spent"},
		{budgetLeft(-1.5), "none: 2.5x the budget spent"},
	} {
		if got, want := tc[0], tc[1]; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}
