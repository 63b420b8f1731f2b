package tracing

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// on is a tracing configuration that is on, towards a port nothing
// listens on: these tests never export.
var on = config.Tracing{Enabled: true, Endpoint: "http://127.0.0.1:1/v1/traces", ServiceName: "lockd"}

func TestOffIsNoop(t *testing.T) {
	p, err := New(context.Background(), config.Tracing{ServiceName: "lockd"}, "r1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if p.TracerProvider() != nil {
		t.Fatalf("tracing off gave %T", p.TracerProvider())
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSDKLogNeverRepeatsItsInput: the SDK logs the headers it cannot
// parse with the input itself; lockd's log gets the message alone, since
// that input is a collector's API key.
func TestSDKLogNeverRepeatsItsInput(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key:s3cr3t-key")
	var buf bytes.Buffer
	p, err := New(context.Background(), on, "r1", slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	if logs := buf.String(); !strings.Contains(logs, "parse headers") || strings.Contains(logs, "s3cr3t") {
		t.Fatalf("log %q: want the SDK's complaint without the header's value", logs)
	}
}

// TestBadResourceAttributesStopTheStart: a malformed
// OTEL_RESOURCE_ATTRIBUTES is refused, naming the variable.
func TestBadResourceAttributesStopTheStart(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment")
	if _, err := New(context.Background(), on, "r1", slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "OTEL_RESOURCE_ATTRIBUTES") {
		t.Fatalf("err = %v, want one naming OTEL_RESOURCE_ATTRIBUTES", err)
	}
}
