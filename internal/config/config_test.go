package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	got, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Port: 8080, Redis: []*redis.Options{{Addr: "localhost:6379"}}, MaxTTL: time.Hour,
		LockExpiry: 30 * time.Second, CriticalSection: 30 * time.Second,
		LogFormat: "text", ShutdownTimeout: 10 * time.Second,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 5*time.Minute + 30*time.Second, IdleTimeout: time.Minute,
		MaxHeaderBytes: 16 << 10, MaxBodyBytes: 64 << 10, MaxWaiters: 1000,
		DemoEnabled: true,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestLoadValues(t *testing.T) {
	got, err := Load(env(map[string]string{
		"PORT": "8081", "REDIS_ADDR": "redis:6379", "REDIS_PASSWORD": "password",
		"REDIS_DB": "1", "LOCK_EXPIRY": "2s", "CRITICAL_SECTION_DURATION": "250ms",
		"LOG_FORMAT": "JSON", "SHUTDOWN_TIMEOUT": "3s", "MAX_TTL": "10m",
		"API_TOKENS": "0123456789abcdef,fedcba9876543210-x", "METRICS_REQUIRE_AUTH": "true",
		"HTTP_READ_HEADER_TIMEOUT": "2s", "HTTP_READ_TIMEOUT": "3s", "HTTP_WRITE_TIMEOUT": "10m",
		"HTTP_IDLE_TIMEOUT": "4s", "HTTP_MAX_HEADER_BYTES": "8192", "MAX_BODY_BYTES": "2048",
		"MAX_WAITERS": "7", "TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.1",
		"LISTEN_ADDR": "127.0.0.1", "DEMO_ENABLED": "false",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Port: 8081, Redis: []*redis.Options{{Addr: "redis:6379", Password: "password", DB: 1}}, MaxTTL: 10 * time.Minute,
		LockExpiry: 2 * time.Second, CriticalSection: 250 * time.Millisecond,
		LogFormat: "json", ShutdownTimeout: 3 * time.Second,
		APITokens: []string{"0123456789abcdef", "fedcba9876543210-x"}, MetricsRequireAuth: true,
		ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 10 * time.Minute,
		IdleTimeout: 4 * time.Second, MaxHeaderBytes: 8192, MaxBodyBytes: 2048, MaxWaiters: 7,
		TrustedProxies: []string{"10.0.0.0/8", "192.168.1.1"},
		ListenAddr:     "127.0.0.1", DemoEnabled: false,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	tests := []struct{ name, value string }{
		{"PORT", "http"},
		{"PORT", "70000"},
		{"PORT", "-1"},
		{"REDIS_ADDR", "localhost"},
		{"REDIS_ADDR", "localhost:abc"},
		{"REDIS_DB", "one"},
		{"REDIS_DB", "-1"},
		{"LOCK_EXPIRY", "30"},
		{"LOCK_EXPIRY", "abc"},
		{"LOCK_EXPIRY", "500ms"},
		{"LOCK_EXPIRY", "48h"},
		{"CRITICAL_SECTION_DURATION", "-1s"},
		{"CRITICAL_SECTION_DURATION", "forever"},
		{"LOG_FORMAT", "xml"},
		{"SHUTDOWN_TIMEOUT", "10"},
		{"MAX_TTL", "2h"},
		{"MAX_TTL", "10ms"},
		{"REDIS_ADDRS", "a:1,b"},
		{"REDIS_ADDRS", "a:1,a:1,b:2"},
		{"REDIS_ADDRS", strings.Repeat("a:1,", 9) + "z:2"},
		{"REDIS_URLS", "http://a:1"},
		{"REDIS_URLS", "redis://a:1,redis://a:1"},
		{"LOCK_EXPIRY", "2h"},
		{"API_TOKENS", "short"},
		{"API_TOKENS_FILE", "/nonexistent/tokens"},
		{"METRICS_REQUIRE_AUTH", "maybe"},
		{"HTTP_WRITE_TIMEOUT", "1m"},
		{"HTTP_READ_HEADER_TIMEOUT", "0"},
		{"HTTP_MAX_HEADER_BYTES", "10"},
		{"MAX_BODY_BYTES", "1"},
		{"MAX_WAITERS", "0"},
		{"TRUSTED_PROXIES", "not-an-ip"},
		{"REDIS_CA_FILE", "/nonexistent/ca.pem"},
		{"LISTEN_ADDR", "127.0.0.1:8080"},
		{"LISTEN_ADDR", "http://localhost"},
		{"LISTEN_ADDR", "-bad-.example"},
		{"LISTEN_ADDR", "a b"},
		{"DEMO_ENABLED", "sometimes"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{tt.name: tt.value}))
			if err == nil {
				t.Fatalf("Load accepted %s=%q", tt.name, tt.value)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.name) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q should be one line naming %s", msg, tt.name)
			}
		})
	}
}

// TestLoadListenAddr: LISTEN_ADDR takes IPv4 and IPv6 addresses (with or
// without brackets) and host names, as net.Listen wants them with PORT.
func TestLoadListenAddr(t *testing.T) {
	for raw, want := range map[string]string{
		"": "", " 127.0.0.1 ": "127.0.0.1", "0.0.0.0": "0.0.0.0", "::1": "::1", "[::1]": "::1",
		"localhost": "localhost", "lockd-1.internal.example": "lockd-1.internal.example",
	} {
		cfg, err := Load(env(map[string]string{"LISTEN_ADDR": raw}))
		if err != nil || cfg.ListenAddr != want {
			t.Errorf("LISTEN_ADDR=%q: got %q, %v; want %q", raw, cfg.ListenAddr, err, want)
		}
	}
}

func TestLoadNeverEchoesThePassword(t *testing.T) {
	_, err := Load(env(map[string]string{"REDIS_PASSWORD": "s3cret", "PORT": "x"}))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadQuorumNodes(t *testing.T) {
	got, err := Load(env(map[string]string{
		"REDIS_ADDRS": "r1:6379, r2:6379,r3:6380", "REDIS_PASSWORD": "pw", "REDIS_DB": "2",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []*redis.Options{
		{Addr: "r1:6379", Password: "pw", DB: 2}, {Addr: "r2:6379", Password: "pw", DB: 2}, {Addr: "r3:6380", Password: "pw", DB: 2},
	}
	if !reflect.DeepEqual(got.Redis, want) || got.Addrs() != "r1:6379,r2:6379,r3:6380" {
		t.Fatalf("got %+v (%s)", got.Redis, got.Addrs())
	}

	got, err = Load(env(map[string]string{
		"REDIS_URLS": "redis://u:secret@r1:6379/3,rediss://r2:6380", "REDIS_PASSWORD": "pw", "REDIS_DB": "1",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if n := got.Redis; len(n) != 2 || n[0].Username != "u" || n[0].Password != "secret" || n[0].DB != 3 ||
		n[1].Password != "pw" || n[1].DB != 1 || n[1].TLSConfig == nil || n[0].TLSConfig != nil {
		t.Fatalf("URLs gave %+v %+v", n[0], n[1])
	}
	if strings.Contains(got.Addrs(), "secret") {
		t.Fatalf("Addrs shows a password: %s", got.Addrs())
	}
}

func TestLoadRefusesTwoWaysToNameRedis(t *testing.T) {
	_, err := Load(env(map[string]string{"REDIS_ADDR": "a:1", "REDIS_ADDRS": "a:1,b:1,c:1"}))
	if err == nil || !strings.Contains(err.Error(), "REDIS_ADDR, REDIS_ADDRS") {
		t.Fatalf("got %v", err)
	}
	_, err = Load(env(map[string]string{"REDIS_URLS": "redis://u:s3cret@host:notaport"}))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a bad URL's error must not repeat it: %v", err)
	}
}

func TestLoadTokensFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# ops\n0123456789abcdef0\n\n  fedcba98765432100  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(env(map[string]string{"API_TOKENS_FILE": file}))
	if err != nil || !reflect.DeepEqual(got.APITokens, []string{"0123456789abcdef0", "fedcba98765432100"}) {
		t.Fatalf("tokens %q, err %v", got.APITokens, err)
	}
	_, err = Load(env(map[string]string{"API_TOKENS_FILE": file, "API_TOKENS": "0123456789abcdef0"}))
	if err == nil {
		t.Fatal("accepted both API_TOKENS and API_TOKENS_FILE")
	}
	_, err = Load(env(map[string]string{"API_TOKENS": "0123456789abcdef0,s3cret"}))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("a short token must be refused without being repeated: %v", err)
	}
}

func TestLoadWriteTimeoutOutlastsTheDemo(t *testing.T) {
	got, err := Load(env(map[string]string{"CRITICAL_SECTION_DURATION": "20m"}))
	if err != nil || got.WriteTimeout <= 20*time.Minute {
		t.Fatalf("write timeout %v for a 20m critical section (%v)", got.WriteTimeout, err)
	}
}
