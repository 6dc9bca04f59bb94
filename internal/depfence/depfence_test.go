package depfence

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/scalekit-go/scalekit"

// TestModuleDependencies runs `go list -deps` over the whole module and fails
// on any package that pulls in what it must not.
func TestModuleDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", module+"/...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		deps[f[0]] = f[1:]
	}
	var present []string
	for _, c := range Core {
		if _, ok := deps[module+"/"+c]; ok {
			present = append(present, c)
		}
	}
	t.Logf("checked %d packages; core packages present: %v", len(deps), present)
	for _, v := range Check(module, deps) {
		t.Errorf("%s depends on %s: %s", v.Package, v.Dep, v.Rule)
	}
}

func TestCheckCatchesViolations(t *testing.T) {
	deps := map[string][]string{
		module + "/breaker":           {"context", "github.com/redis/go-redis/v9"},
		module + "/cache":             {"golang.org/x/sync/singleflight"},
		module + "/cache/cacheredis":  {"github.com/redis/go-redis/v9"},
		module + "/queue":             {"github.com/jackc/pgx/v5/pgconn"},
		module + "/slo":               {"github.com/prometheus/client_golang/prometheus"},
		module + "/dbrouter":          {"github.com/jackc/pgx/v5"},
		module + "/dbrouter/internal": {"github.com/prometheus/common/model"},
		module + "/metrics":           {"github.com/prometheus/client_golang/prometheus"},
		module + "/examples/service":  {"github.com/prometheus/client_golang/prometheus"},
		module + "/cache/cacheredis2": {"go.opentelemetry.io/otel/trace"},
		module + "/metrics/x":         {"go.opentelemetry.io/otel/metric"},
	}
	got := map[string]bool{}
	for _, v := range Check(module, deps) {
		got[strings.TrimPrefix(v.Package, module+"/")+" -> "+v.Dep] = true
	}
	want := []string{
		"breaker -> github.com/redis/go-redis/v9",
		"queue -> github.com/jackc/pgx/v5/pgconn",
		"slo -> github.com/prometheus/client_golang/prometheus",
		"dbrouter/internal -> github.com/prometheus/common/model",
		"cache/cacheredis2 -> go.opentelemetry.io/otel/trace",
		"metrics/x -> go.opentelemetry.io/otel/metric",
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("Check missed %s", w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Check found %d violations, want %d: %v", len(got), len(want), got)
	}
}

func TestCheckKeepsEnginesOutOfMetrics(t *testing.T) {
	deps := map[string][]string{
		module + "/metrics":              {"github.com/prometheus/client_golang/prometheus", "github.com/jackc/pgx/v5/pgxpool"},
		module + "/dbrouter/routerstats": {"github.com/redis/go-redis/v9"},
		module + "/dbrouter":             {"github.com/jackc/pgx/v5"},
	}
	got := map[string]bool{}
	for _, v := range Check(module, deps) {
		got[strings.TrimPrefix(v.Package, module+"/")+" -> "+v.Dep] = true
	}
	for _, w := range []string{"metrics -> github.com/jackc/pgx/v5/pgxpool", "dbrouter/routerstats -> github.com/redis/go-redis/v9"} {
		if !got[w] {
			t.Errorf("Check missed %s", w)
		}
	}
	if len(got) != 2 {
		t.Errorf("Check found %d violations, want 2: %v", len(got), got)
	}
}

// TestCoreHasNoOpenTelemetry lists, with `go list -deps`, what the core
// packages compile, and fails on any OpenTelemetry package: the otel
// module is the only place it lives.
func TestCoreHasNoOpenTelemetry(t *testing.T) {
	pkgs := make([]string, len(Core))
	for i, c := range Core {
		pkgs[i] = module + "/" + c
	}
	out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, OpenTelemetry) {
			t.Errorf("the core packages compile %s", p)
		}
	}
}

// TestExamplesUsePublicAPI fails when an example (its code or its tests)
// imports a package under internal/: a user copies examples, and cannot
// import what is internal to this module. The examples are a module of
// their own (examples/go.mod, so that they may use the otel module): go
// list runs there, where Go's internal rule, which goes by import path,
// would still let them import this module's internal packages.
func TestExamplesUsePublicAPI(t *testing.T) {
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}} {{join .TestImports \" \"}} {{join .XTestImports \" \"}}", "./...")
	cmd.Dir = filepath.Join("..", "..", "examples")
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		t.Fatalf("go list found %d example packages, want the service and the load generator", len(lines))
	}
	for _, line := range lines {
		f := strings.Fields(line)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, module+"/internal/") {
				t.Errorf("%s imports %s; examples use only public packages (scalekittest starts the servers)", f[0], imp)
			}
		}
	}
}
