package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// The environment picks the exporter as the OpenTelemetry SDK's
// variables say, off by default; a value the service cannot honour is an
// error naming the variable.
func TestTelemetryFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name            string
		env             map[string]string
		traces, metrics bool
		otlp            bool // an OTLP exporter, whose flush finds no collector
		wantErr         string
	}{
		{name: "nothing set: off"},
		{name: "none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none"}},
		{name: "console traces", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, traces: true},
		{name: "otlp traces", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, traces: true, otlp: true},
		{name: "console metrics", env: map[string]string{"OTEL_METRICS_EXPORTER": "console"}, metrics: true},
		{name: "otlp metrics", env: map[string]string{"OTEL_METRICS_EXPORTER": "otlp"}, metrics: true, otlp: true},
		{name: "both", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}, traces: true, metrics: true},
		{name: "an endpoint implies otlp for both", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, traces: true, metrics: true, otlp: true},
		{name: "a traces endpoint, traces only", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, traces: true, otlp: true},
		{name: "a metrics endpoint, metrics only", env: map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://127.0.0.1:4318/v1/metrics"}, metrics: true, otlp: true},
		{name: "an endpoint, metrics none", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_METRICS_EXPORTER": "none"}, traces: true, otlp: true},
		{name: "disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "prometheus metrics exporter", env: map[string]string{"OTEL_METRICS_EXPORTER": "prometheus"}, wantErr: "OTEL_METRICS_EXPORTER"},
		{name: "grpc", env: map[string]string{"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
				t.Setenv(k, tc.env[k])
			}
			var out bytes.Buffer
			tp, mp, shutdown, err := telemetryFromEnv(context.Background(), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tp != nil) != tc.traces || (mp != nil) != tc.metrics || (shutdown != nil) != (tc.traces || tc.metrics) {
				t.Fatalf("traces on: %v, metrics on: %v, shutdown %v; want %v, %v", tp != nil, mp != nil, shutdown != nil, tc.traces, tc.metrics)
			}
			if shutdown == nil {
				return
			}
			if tc.env["OTEL_TRACES_EXPORTER"] == "console" { // the OTLP cases export nothing: no collector here
				_, span := tp.Tracer("test").Start(context.Background(), "a span")
				span.End()
				if !strings.Contains(out.String(), `"Name":"a span"`) {
					t.Fatalf("the console exporter printed %q", out.String())
				}
			}
			if tc.env["OTEL_METRICS_EXPORTER"] == "console" {
				c, err := mp.Meter("test").Int64Counter("a_counter")
				if err != nil {
					t.Fatal(err)
				}
				c.Add(context.Background(), 1)
			}
			timeout := 30 * time.Second
			if tc.otlp {
				timeout = 100 * time.Millisecond
			}
			sctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := shutdown(sctx); err != nil && !tc.otlp { // it flushes the console metrics
				t.Fatal(err)
			}
			if tc.env["OTEL_METRICS_EXPORTER"] == "console" && !strings.Contains(out.String(), `"Name":"a_counter"`) {
				t.Fatalf("the console metrics exporter printed %q", out.String())
			}
		})
	}
}

// With OTEL_METRICS_EXPORTER=console in the environment (and no providers
// in Config) the service prints its primitives' OpenTelemetry metrics to
// Run's output: after a request that misses the user cache, an export
// holds the breaker's families and the cache's, with that miss counted.
// With nothing set there is no meter provider (TestTelemetryFromEnv).
func TestConsoleMetricsFromEnv(t *testing.T) {
	for k, v := range map[string]string{"OTEL_METRICS_EXPORTER": "console", "OTEL_METRIC_EXPORT_INTERVAL": "500",
		"OTEL_TRACES_EXPORTER": "", "OTEL_SDK_DISABLED": "", "OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""} {
		t.Setenv(k, v)
	}
	var out jsonLog
	base, _ := startServiceOut(t, io.Discard, &out)
	client := &http.Client{Timeout: 10 * time.Second}
	waitReplicaReads(t, client, base)
	welcome(t, client, base, "console-metrics-5")
	var last map[string]map[string]float64
	defer func() {
		if t.Failed() {
			o := out.String()
			t.Logf("%d bytes of output, the last export %v; it ends %q", len(o), last, o[max(0, len(o)-2000):])
		}
	}()
	eventually(t, 30*time.Second, "an export with the breaker's families and the users cache's miss", func() bool {
		last = lastExport(t, out.String())
		return len(last["scalekit_breaker_state"]) > 0 && last["scalekit_cache_misses"]["name=users,tier=l1"] >= 1
	})
	for _, name := range []string{"scalekit_breaker_calls", "scalekit_cache_hits", "scalekit_queue_jobs", "scalekit_dbrouter_replica_reads", "scalekit_slo_burn_rate"} {
		if len(last[name]) == 0 {
			t.Errorf("the export has no %s", name)
		}
	}
}

// lastExport decodes the console metrics exporter's output, one JSON
// export a line among Run's other output, and returns the last export's
// data points: metric name -> "k=v,..." -> value.
func lastExport(t *testing.T, out string) map[string]map[string]float64 {
	t.Helper()
	var last map[string]map[string]float64
	for _, line := range strings.Split(out, "\n") {
		var export struct {
			ScopeMetrics []struct {
				Metrics []struct {
					Name string
					Data struct {
						DataPoints []struct {
							Attributes []struct {
								Key   string
								Value struct{ Value any }
							}
							Value float64
						}
					}
				}
			}
		}
		if !strings.HasPrefix(line, `{"Resource":`) || json.Unmarshal([]byte(line), &export) != nil {
			continue // another line of Run's, or an export half written
		}
		last = map[string]map[string]float64{}
		for _, sm := range export.ScopeMetrics {
			for _, m := range sm.Metrics {
				for _, p := range m.Data.DataPoints {
					var kv []string
					for _, a := range p.Attributes {
						kv = append(kv, fmt.Sprint(a.Key, "=", a.Value.Value))
					}
					sort.Strings(kv)
					if last[m.Name] == nil {
						last[m.Name] = map[string]float64{}
					}
					last[m.Name][strings.Join(kv, ",")] = p.Value
				}
			}
		}
	}
	return last
}
