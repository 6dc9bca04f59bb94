package logx

import (
	"context"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiscardIsDisabledAtEveryLevel(t *testing.T) {
	for _, l := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelError + 100} {
		if Or(nil).Enabled(context.Background(), l) {
			t.Fatalf("the default logger is enabled at %v: every suppressed line would be formatted", l)
		}
	}
	own := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if Or(own) != own {
		t.Fatal("Or replaced a logger the caller set")
	}
}

// TestNoFormattingDiscardLoggers guards the whole module: a default logger
// built as a text or JSON handler over io.Discard formats every suppressed
// line (4-6 µs each) before throwing it away. Library code uses Or instead.
func TestNoFormattingDiscardLoggers(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bench" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, bad := range []string{"NewTextHandler(io.Discard", "NewJSONHandler(io.Discard"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s builds a default logger with %s...): use logx.Or (slog.DiscardHandler)", path, bad)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func BenchmarkSuppressedLine(b *testing.B) {
	l := Or(nil)
	b.ReportAllocs()
	for b.Loop() {
		l.Info("suppressed", "key", "value", "n", 42)
	}
}
