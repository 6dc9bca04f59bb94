// Package depfence holds the test that keeps heavy dependencies out of the
// core packages: importing breaker or cache must never compile go-redis, pgx
// or Prometheus. Engines live in <primitive><engine> sub-packages and
// Prometheus in metrics alone (see ARCHITECTURE.md).
package depfence

import "strings"

// Core lists the packages that may import only the standard library and
// golang.org/x/sync (their engine sub-packages are not core).
var Core = []string{"clock", "timeout", "priority", "bulkhead", "throttle", "policy", "breaker", "retry", "ratelimit", "cache", "batch", "slo", "health", "shutdown", "queue", "idempotency", "requestid", "httpcache", "cache/cachequeue", "console"}

// Heavy lists the module prefixes core packages must not depend on.
var Heavy = []string{"github.com/redis/go-redis", "github.com/jackc/pgx", "github.com/prometheus/"}

// EngineFree lists the packages that read the primitives' Stats without
// compiling any engine: importing metrics must not drag in go-redis or pgx.
var EngineFree = []string{"metrics", "dbrouter/routerstats", "shard/shardstats"}

// OpenTelemetry is the module prefix no package of this module may
// depend on: OpenTelemetry lives in the otel module of its own (otel/,
// with its own go.mod), so the core module's go.mod gains none of it.
const OpenTelemetry = "go.opentelemetry.io/"

// Engines lists the module prefixes of the engines' client libraries.
var Engines = []string{"github.com/redis/go-redis", "github.com/jackc/pgx"}

// Violation is one forbidden dependency.
type Violation struct {
	Package, Dep, Rule string
}

// Check returns the violations in deps, a map from each package of the
// module (import path) to its transitive dependencies:
//   - a core package depending on anything in Heavy;
//   - a package in EngineFree depending on anything in Engines;
//   - any package outside metrics/, examples/ and bench/ depending on
//     Prometheus (library code never drags it in);
//   - any package at all depending on OpenTelemetry (the otel module,
//     nested in the repository, is not part of this module).
func Check(module string, deps map[string][]string) []Violation {
	var out []Violation
	core := map[string]bool{}
	for _, c := range Core {
		core[module+"/"+c] = true
	}
	engineFree := map[string]bool{}
	for _, c := range EngineFree {
		engineFree[module+"/"+c] = true
	}
	for pkg, ds := range deps {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		promOK := rel == "metrics" || strings.HasPrefix(rel, "metrics/") || strings.HasPrefix(rel, "examples/") || strings.HasPrefix(rel, "bench/")
		for _, d := range ds {
			if core[pkg] {
				for _, h := range Heavy {
					if strings.HasPrefix(d, h) {
						out = append(out, Violation{pkg, d, "core packages import only the standard library and golang.org/x/sync"})
					}
				}
			}
			if engineFree[pkg] {
				for _, e := range Engines {
					if strings.HasPrefix(d, e) {
						out = append(out, Violation{pkg, d, "collectors read Stats without compiling an engine"})
					}
				}
			}
			if strings.HasPrefix(d, OpenTelemetry) {
				out = append(out, Violation{pkg, d, "OpenTelemetry lives in the otel module of its own"})
			}
			if !promOK && !core[pkg] && strings.HasPrefix(d, "github.com/prometheus/") {
				out = append(out, Violation{pkg, d, "Prometheus lives in metrics alone"})
			}
		}
	}
	return out
}
