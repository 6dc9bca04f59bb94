package cache

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/scalekit-go/scalekit/requestid"
)

// A failed load is logged with the caller's ctx, so a
// requestid.NewLogHandler logger gives the line the request's ID.
func TestLoadFailureLogCarriesTheRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(requestid.NewLogHandler(slog.NewTextHandler(&buf, nil)))
	c, err := New[int](Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := requestid.NewContext(context.Background(), "req-cache")
	if _, err := c.Get(ctx, "k", func(context.Context, string) (int, error) { return 0, errors.New("db down") }); err == nil {
		t.Fatal("no error")
	}
	if out := buf.String(); !strings.Contains(out, `msg="cache: load failed"`) || !strings.Contains(out, "request_id=req-cache") {
		t.Fatalf("log:\n%s", out)
	}
}

// At Debug, a load is logged with the caller's ctx.
func TestLoadLogAtDebug(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(requestid.NewLogHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	c, err := New[int](Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Get(requestid.NewContext(context.Background(), "req-load"), "k", func(context.Context, string) (int, error) { return 1, nil }); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, `msg="cache: loaded" key=k found=1`) || !strings.Contains(out, "request_id=req-load") {
		t.Fatalf("log:\n%s", out)
	}
}
