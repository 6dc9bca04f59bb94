package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The environment picks the exporter as the OpenTelemetry SDK's
// variables say, off by default; a value the service cannot honour is an
// error naming the variable.
func TestTelemetryFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr string
	}{
		{name: "nothing set: off"},
		{name: "none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, on: true},
		{name: "otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{name: "an endpoint implies otlp", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: true},
		{name: "disabled wins", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: "OTEL_TRACES_EXPORTER"},
		{name: "grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{name: "metrics exporter", env: map[string]string{"OTEL_METRICS_EXPORTER": "otlp"}, wantErr: "OTEL_METRICS_EXPORTER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"OTEL_SDK_DISABLED", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
				t.Setenv(k, tc.env[k])
			}
			var out bytes.Buffer
			tp, shutdown, err := telemetryFromEnv(context.Background(), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tp != nil) != tc.on || (shutdown != nil) != tc.on {
				t.Fatalf("tracing on: %v, want %v", tp != nil, tc.on)
			}
			if !tc.on {
				return
			}
			if tc.env["OTEL_TRACES_EXPORTER"] == "console" { // the OTLP cases export nothing: no collector here
				_, span := tp.Tracer("test").Start(context.Background(), "a span")
				span.End()
				if !strings.Contains(out.String(), `"Name":"a span"`) {
					t.Fatalf("the console exporter printed %q", out.String())
				}
			}
			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}
