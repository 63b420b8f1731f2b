package config

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
)

// Tracing says whether and where lockd sends OpenTelemetry traces. It is
// read from the standard OTEL_* variables that decide those things; the
// OpenTelemetry SDK reads the others (headers, timeout, compression,
// certificates, sampler, resource attributes, batching) from the process
// environment itself, as it does for any Go service.
type Tracing struct {
	// Enabled is true when an OTLP endpoint is named
	// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
	// or OTEL_TRACES_EXPORTER is otlp, and neither OTEL_TRACES_EXPORTER=none
	// nor OTEL_SDK_DISABLED=true turns it off. Off, no exporter is built
	// and nothing is sent anywhere: the default stack needs no collector.
	Enabled bool
	// Endpoint is the URL spans are posted to over OTLP/HTTP, path
	// included: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, or
	// OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces appended, as the
	// specification says. Empty: the SDK's default,
	// http://localhost:4318/v1/traces.
	Endpoint string
	// ServiceName is the service.name of every span (OTEL_SERVICE_NAME,
	// default lockd).
	ServiceName string
	// RecordLockNames puts lock names, and the raw URL path that carries
	// them, on spans (OTEL_RECORD_LOCK_NAMES, default false): names may
	// carry user data, and a trace backend is often read by more people
	// than the service's own logs.
	RecordLockNames bool
}

// loadTracing reads the tracing variables. Only OTLP over HTTP with
// protobuf is built in: a gRPC exporter would pull gRPC's whole stack into
// a service that never speaks it, and every collector also takes HTTP
// (port 4318).
func loadTracing(p *parser) Tracing {
	t := Tracing{
		ServiceName:     strings.TrimSpace(p.getenv("OTEL_SERVICE_NAME")),
		RecordLockNames: p.boolean("OTEL_RECORD_LOCK_NAMES", false),
	}
	disabled := p.boolean("OTEL_SDK_DISABLED", false)
	exporter := p.oneOf("OTEL_TRACES_EXPORTER", "", "otlp", "none")
	p.oneOf("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", "http/protobuf")
	p.oneOf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf", "http/protobuf")
	base := p.otlpURL("OTEL_EXPORTER_OTLP_ENDPOINT")
	traces := p.otlpURL("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	switch {
	case traces != "":
		t.Endpoint = traces
	case base != "":
		t.Endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
	}
	t.Enabled = !disabled && exporter != "none" && (exporter == "otlp" || t.Endpoint != "")
	if t.ServiceName == "" {
		t.ServiceName = "lockd"
	}
	if len(t.ServiceName) > 255 || strings.ContainsFunc(t.ServiceName, unicode.IsControl) {
		p.fail("OTEL_SERVICE_NAME", t.ServiceName, "must be at most 255 characters, none of them control characters")
	}
	return t
}

// otlpURL reads an OTLP endpoint: an http:// or https:// URL with a host.
// Its error never repeats the value, which may carry credentials.
func (p *parser) otlpURL(name string) string {
	raw := strings.TrimSpace(p.getenv(name))
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		if p.err == nil {
			p.err = fmt.Errorf("config: %s: not an http:// or https:// URL such as http://otel-collector:4318 (credentials go in OTEL_EXPORTER_OTLP_HEADERS)", name)
		}
		return ""
	}
	return raw
}
