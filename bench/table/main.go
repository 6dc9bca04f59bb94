// Command table runs the benchmarks behind issue 19's figures in one run
// and prints them as one markdown table: scalekit's throughput, the best
// peer's, their ratio, the server's CPU and the round trips per op of
// both, and scalekit's share of this machine's ceiling (BenchmarkCeiling).
// From bench/:
//
//	go run ./table                  # the whole run, -count 3 (~15-25 min on 2 cores)
//	go run ./table -raw run.txt     # also keep go test's output
//	go run ./table -in run.txt      # the table of a kept output, nothing run
//
// Values are medians over the -count repetitions; go test's output goes
// to stderr as it runs.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

func main() {
	count := flag.Int("count", 3, "repetitions of every benchmark (go test -count); the table shows medians")
	benchtime := flag.String("benchtime", "", "go test -benchtime for every family (default: each family's own)")
	raw := flag.String("raw", "", "also write go test's output to this file")
	in := flag.String("in", "", "read go test -bench output from this file instead of running")
	flag.Parse()
	if err := run(os.Stdout, *count, *benchtime, *raw, *in); err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, count int, benchtime, rawPath, inPath string) error {
	start := time.Now()
	res := results{}
	var notes []string
	if inPath != "" {
		f, err := os.Open(inPath)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := res.parse(f); err != nil {
			return err
		}
		notes = append(notes, "from "+inPath)
	} else {
		load0 := loadavg()
		var rawOut bytes.Buffer
		failed := 0
		for _, fam := range families {
			bt := fam.benchtime
			if benchtime != "" {
				bt = benchtime
			}
			args := []string{"test", "-run", "^$", "-bench", fam.pattern, "-benchmem", "-benchtime", bt,
				"-count", fmt.Sprint(count), "-timeout", "30m", "."}
			fmt.Fprintf(os.Stderr, "== go %s (t=%s)\n", strings.Join(args, " "), time.Since(start).Round(time.Second))
			var buf bytes.Buffer
			cmd := exec.Command("go", args...)
			cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
			cmd.Stderr = os.Stderr
			if err := cmd.Run(); err != nil {
				// The other families still run; the table says "not run".
				fmt.Fprintf(os.Stderr, "table: %s: %v\n", fam.pattern, err)
				failed++
			}
			rawOut.Write(buf.Bytes())
			if err := res.parse(&buf); err != nil {
				return err
			}
		}
		if rawPath != "" {
			if err := os.WriteFile(rawPath, rawOut.Bytes(), 0o644); err != nil {
				return err
			}
		}
		notes = append(notes, fmt.Sprintf("%s, %s, %d CPUs, `-count %d`, medians; load average %s before, %s after; wall time %s",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.Version(), runtime.NumCPU(), count,
			load0, loadavg(), time.Since(start).Round(time.Second)))
		if failed > 0 {
			notes = append(notes, fmt.Sprintf("%d families failed (see stderr)", failed))
		}
	}
	rows := make([]row, len(figures))
	for i, f := range figures {
		rows[i] = measure(f, res)
	}
	fmt.Fprintf(out, "Run: %s.\n\n", strings.Join(notes, "; "))
	fmt.Fprint(out, markdown(rows))
	fmt.Fprintln(out, "\nNot measured by this tool: the example service's p99 at 2,000 req/s (item 10; goal <= 50 ms: examples/loadgen, see examples/README.md);"+
		" the lease mode's over-admission (item 8; <= 1% over 10 s on a Cluster: TestLeaseOverAdmissionCluster) and the tracked cache's"+
		" invalidation delay (item 6; <= 10 ms: TestTrackingDelay), measured by those tests.")
	return nil
}

// loadavg is /proc/loadavg's 1-minute load average, or "?".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}
