package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"math/big"
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
		Port: 8080, Redis: []*redis.Options{{Addr: "localhost:6379"}}, ReplicaTimeout: 500 * time.Millisecond,
		MaxTTL:     time.Hour,
		LockExpiry: 30 * time.Second, CriticalSection: 30 * time.Second,
		LogFormat: "text", ShutdownTimeout: 10 * time.Second,
		ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 5*time.Minute + 30*time.Second, IdleTimeout: time.Minute,
		MaxHeaderBytes: 16 << 10, MaxBodyBytes: 64 << 10, MaxWaiters: 1000,
		DemoEnabled: true, Tracing: Tracing{ServiceName: "lockd"},
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
		"REDIS_USERNAME": "lockd", "REDIS_TLS": "true", "REDIS_MIN_REPLICAS": "2", "REDIS_REPLICA_TIMEOUT": "250ms",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Port: 8081, Redis: []*redis.Options{{Addr: "redis:6379", Username: "lockd", Password: "password", DB: 1, TLSConfig: tlsFor("redis")}},
		MinReplicas: 2, ReplicaTimeout: 250 * time.Millisecond, MaxTTL: 10 * time.Minute,
		LockExpiry: 2 * time.Second, CriticalSection: 250 * time.Millisecond,
		LogFormat: "json", ShutdownTimeout: 3 * time.Second,
		APITokens: []string{"0123456789abcdef", "fedcba9876543210-x"}, MetricsRequireAuth: true,
		ReadHeaderTimeout: 2 * time.Second, ReadTimeout: 3 * time.Second, WriteTimeout: 10 * time.Minute,
		IdleTimeout: 4 * time.Second, MaxHeaderBytes: 8192, MaxBodyBytes: 2048, MaxWaiters: 7,
		TrustedProxies: []string{"10.0.0.0/8", "192.168.1.1"},
		ListenAddr:     "127.0.0.1", DemoEnabled: false,
		Tracing: Tracing{ServiceName: "lockd"},
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
		{"OTEL_TRACES_EXPORTER", "jaeger"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"},
		{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT", "otel-collector:4318"},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://collector/v1/traces"},
		{"OTEL_SDK_DISABLED", "yes please"},
		{"OTEL_RECORD_LOCK_NAMES", "sometimes"},
		{"OTEL_SERVICE_NAME", "lock\td"},
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
		{"REDIS_TLS", "maybe"},
		{"REDIS_USERNAME", "lockd"},
		{"REDIS_MIN_REPLICAS", "-1"},
		{"REDIS_MIN_REPLICAS", "17"},
		{"REDIS_MIN_REPLICAS", "all"},
		{"REDIS_REPLICA_TIMEOUT", "0"},
		{"REDIS_REPLICA_TIMEOUT", "500us"},
		{"REDIS_REPLICA_TIMEOUT", "11s"},
		{"REDIS_REPLICA_TIMEOUT", "500"},
		{"REDIS_CLUSTER_ADDRS", "a"},
		{"REDIS_CLUSTER_ADDRS", "a:1,b:0"},
		{"REDIS_CLUSTER_ADDRS", "a:1,b:2,a:1"},
		{"REDIS_CLUSTER_ADDRS", strings.Repeat("a:1,", 16) + "z:2"},
		{"REDIS_SENTINEL_ADDRS", "s1:26379"},
		{"REDIS_MASTER_NAME", "mymaster"},
		{"REDIS_SENTINEL_USERNAME", "sentinel-user"},
		{"REDIS_SENTINEL_PASSWORD", "pw"},
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

// tlsFor is the TLS configuration REDIS_TLS gives a node named host.
func tlsFor(host string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
}

// TestLoadRedisModes: each way of naming Redis, with what goes with it.
func TestLoadRedisModes(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		want  Config // Redis, RedisCluster, RedisSentinel, MinReplicas, ReplicaTimeout
		mode  string
		addrs string
		db    int
	}{{
		name: "default",
		want: Config{Redis: []*redis.Options{{Addr: "localhost:6379"}}},
		mode: "single", addrs: "localhost:6379",
	}, {
		name: "one node over TLS with replicas",
		env: map[string]string{"REDIS_ADDR": "[::1]:6380", "REDIS_TLS": "true", "REDIS_USERNAME": " lockd ",
			"REDIS_PASSWORD": "pw", "REDIS_DB": "3", "REDIS_MIN_REPLICAS": "1", "REDIS_REPLICA_TIMEOUT": "2s"},
		want: Config{Redis: []*redis.Options{{Addr: "[::1]:6380", Username: "lockd", Password: "pw", DB: 3, TLSConfig: tlsFor("::1")}},
			MinReplicas: 1, ReplicaTimeout: 2 * time.Second},
		mode: "single", addrs: "[::1]:6380", db: 3,
	}, {
		name: "REDIS_ADDRS with one node takes replicas",
		env:  map[string]string{"REDIS_ADDRS": "r1:6379", "REDIS_MIN_REPLICAS": "16"},
		want: Config{Redis: []*redis.Options{{Addr: "r1:6379"}}, MinReplicas: 16},
		mode: "single", addrs: "r1:6379",
	}, {
		name: "quorum over TLS",
		env:  map[string]string{"REDIS_ADDRS": "r1:6379,r2:6380", "REDIS_TLS": "true", "REDIS_USERNAME": "lockd", "REDIS_PASSWORD": "pw"},
		want: Config{Redis: []*redis.Options{
			{Addr: "r1:6379", Username: "lockd", Password: "pw", TLSConfig: tlsFor("r1")},
			{Addr: "r2:6380", Username: "lockd", Password: "pw", TLSConfig: tlsFor("r2")},
		}},
		mode: "quorum", addrs: "r1:6379,r2:6380",
	}, {
		name: "URLs: a user in the URL wins over REDIS_USERNAME",
		env: map[string]string{"REDIS_URLS": "redis://r1:6379,redis://own:secret@r2:6379", "REDIS_USERNAME": "lockd",
			"REDIS_PASSWORD": "pw", "REDIS_TLS": "false"},
		want: Config{Redis: []*redis.Options{
			{Network: "tcp", Addr: "r1:6379", Username: "lockd", Password: "pw"},
			{Network: "tcp", Addr: "r2:6379", Username: "own", Password: "secret"},
		}},
		mode: "quorum", addrs: "r1:6379,r2:6379",
	}, {
		name: "cluster",
		env: map[string]string{"REDIS_CLUSTER_ADDRS": "c1:7000, c2:7001", "REDIS_USERNAME": "lockd", "REDIS_PASSWORD": "pw",
			"REDIS_TLS": "true", "REDIS_DB": "0", "REDIS_MIN_REPLICAS": "1"},
		want: Config{RedisCluster: &redis.ClusterOptions{Addrs: []string{"c1:7000", "c2:7001"}, Username: "lockd", Password: "pw",
			TLSConfig: tlsFor("")}, MinReplicas: 1},
		mode: "cluster", addrs: "c1:7000,c2:7001",
	}, {
		name: "cluster without TLS",
		env:  map[string]string{"REDIS_CLUSTER_ADDRS": "c1:7000"},
		want: Config{RedisCluster: &redis.ClusterOptions{Addrs: []string{"c1:7000"}}},
		mode: "cluster", addrs: "c1:7000",
	}, {
		name: "Sentinel",
		env: map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379,s2:26379,s3:26379", "REDIS_MASTER_NAME": " mymaster ",
			"REDIS_SENTINEL_USERNAME": "watcher", "REDIS_SENTINEL_PASSWORD": "spw",
			"REDIS_USERNAME": "lockd", "REDIS_PASSWORD": "pw", "REDIS_DB": "2", "REDIS_TLS": "true", "REDIS_MIN_REPLICAS": "2"},
		want: Config{RedisSentinel: &redis.FailoverOptions{
			MasterName: "mymaster", SentinelAddrs: []string{"s1:26379", "s2:26379", "s3:26379"},
			SentinelUsername: "watcher", SentinelPassword: "spw", Username: "lockd", Password: "pw", DB: 2, TLSConfig: tlsFor(""),
		}, MinReplicas: 2},
		mode: "sentinel", addrs: "s1:26379,s2:26379,s3:26379", db: 2,
	}, {
		name: "Sentinel without credentials",
		env:  map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379", "REDIS_MASTER_NAME": "mymaster"},
		want: Config{RedisSentinel: &redis.FailoverOptions{MasterName: "mymaster", SentinelAddrs: []string{"s1:26379"}}},
		mode: "sentinel", addrs: "s1:26379",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if tt.want.ReplicaTimeout == 0 {
				tt.want.ReplicaTimeout = 500 * time.Millisecond
			}
			if !reflect.DeepEqual(got.Redis, tt.want.Redis) {
				t.Errorf("Redis: got %+v, want %+v", got.Redis, tt.want.Redis)
			}
			if !reflect.DeepEqual(got.RedisCluster, tt.want.RedisCluster) {
				t.Errorf("RedisCluster: got %+v, want %+v", got.RedisCluster, tt.want.RedisCluster)
			}
			if !reflect.DeepEqual(got.RedisSentinel, tt.want.RedisSentinel) {
				t.Errorf("RedisSentinel: got %+v, want %+v", got.RedisSentinel, tt.want.RedisSentinel)
			}
			if got.MinReplicas != tt.want.MinReplicas || got.ReplicaTimeout != tt.want.ReplicaTimeout {
				t.Errorf("replicas: got %d within %v, want %d within %v", got.MinReplicas, got.ReplicaTimeout, tt.want.MinReplicas, tt.want.ReplicaTimeout)
			}
			if got.RedisMode() != tt.mode || got.Addrs() != tt.addrs || got.RedisDB() != tt.db {
				t.Errorf("got mode %q, addrs %q, db %d; want %q, %q, %d", got.RedisMode(), got.Addrs(), got.RedisDB(), tt.mode, tt.addrs, tt.db)
			}
		})
	}
}

// TestLoadRedisErrors: every Redis configuration error is one line that
// names each variable involved, and never repeats a password.
func TestLoadRedisErrors(t *testing.T) {
	noPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(noPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := writeCA(t)
	const pw, spw = "Secr3tPassw0rd", "S3ntinelPassw0rd"
	tests := []struct {
		env   map[string]string
		names []string
	}{
		{map[string]string{"REDIS_ADDR": "a:1", "REDIS_CLUSTER_ADDRS": "c:1", "REDIS_PASSWORD": pw}, []string{"REDIS_ADDR", "REDIS_CLUSTER_ADDRS"}},
		{map[string]string{"REDIS_ADDRS": "a:1,b:1", "REDIS_SENTINEL_ADDRS": "s:1", "REDIS_MASTER_NAME": "m"}, []string{"REDIS_ADDRS", "REDIS_SENTINEL_ADDRS"}},
		{map[string]string{"REDIS_URLS": "redis://a:1", "REDIS_CLUSTER_ADDRS": "c:1"}, []string{"REDIS_URLS", "REDIS_CLUSTER_ADDRS"}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "c:1", "REDIS_SENTINEL_ADDRS": "s:1"}, []string{"REDIS_CLUSTER_ADDRS", "REDIS_SENTINEL_ADDRS"}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "c:1", "REDIS_DB": "1", "REDIS_PASSWORD": pw}, []string{"REDIS_DB", "REDIS_CLUSTER_ADDRS"}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "c:1", "LEGACY_KEYS": "true"}, []string{"LEGACY_KEYS", "REDIS_CLUSTER_ADDRS"}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "c:1,c:1"}, []string{"REDIS_CLUSTER_ADDRS"}},
		{map[string]string{"REDIS_SENTINEL_ADDRS": "s:1", "REDIS_PASSWORD": pw, "REDIS_SENTINEL_PASSWORD": spw}, []string{"REDIS_SENTINEL_ADDRS", "REDIS_MASTER_NAME"}},
		{map[string]string{"REDIS_SENTINEL_ADDRS": "s:1,s", "REDIS_MASTER_NAME": "m"}, []string{"REDIS_SENTINEL_ADDRS"}},
		{map[string]string{"REDIS_SENTINEL_ADDRS": "s:1", "REDIS_MASTER_NAME": "my master"}, []string{"REDIS_MASTER_NAME"}},
		{map[string]string{"REDIS_SENTINEL_ADDRS": "s:1", "REDIS_MASTER_NAME": strings.Repeat("m", 129)}, []string{"REDIS_MASTER_NAME"}},
		{map[string]string{"REDIS_ADDR": "a:1", "REDIS_MASTER_NAME": "m"}, []string{"REDIS_MASTER_NAME", "REDIS_SENTINEL_ADDRS"}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "c:1", "REDIS_SENTINEL_PASSWORD": spw}, []string{"REDIS_SENTINEL_PASSWORD", "REDIS_SENTINEL_ADDRS"}},
		{map[string]string{"REDIS_SENTINEL_USERNAME": "watcher", "REDIS_MASTER_NAME": "m"}, []string{"REDIS_MASTER_NAME", "REDIS_SENTINEL_USERNAME", "REDIS_SENTINEL_ADDRS"}},
		{map[string]string{"REDIS_SENTINEL_ADDRS": "s:1", "REDIS_MASTER_NAME": "m", "REDIS_SENTINEL_USERNAME": "watcher", "REDIS_PASSWORD": pw}, []string{"REDIS_SENTINEL_USERNAME", "REDIS_SENTINEL_PASSWORD"}},
		{map[string]string{"REDIS_CLUSTER_ADDRS": "c:1", "REDIS_USERNAME": "lockd"}, []string{"REDIS_USERNAME", "REDIS_PASSWORD"}},
		{map[string]string{"REDIS_SENTINEL_ADDRS": "s:1", "REDIS_MASTER_NAME": "m", "REDIS_USERNAME": "lockd", "REDIS_SENTINEL_PASSWORD": spw}, []string{"REDIS_USERNAME", "REDIS_PASSWORD"}},
		{map[string]string{"REDIS_URLS": "redis://:" + pw + "@a:1,redis://b:1", "REDIS_USERNAME": "lockd"}, []string{"REDIS_USERNAME", "REDIS_URLS", "REDIS_PASSWORD"}},
		{map[string]string{"REDIS_URLS": "redis://own@a:1"}, []string{"REDIS_URLS", "REDIS_PASSWORD"}},
		{map[string]string{"REDIS_URLS": "rediss://lockd:" + pw + "@a:1", "REDIS_TLS": "true"}, []string{"REDIS_TLS", "REDIS_URLS"}},
		{map[string]string{"REDIS_ADDRS": "a:1,b:1,c:1", "REDIS_MIN_REPLICAS": "1", "REDIS_PASSWORD": pw}, []string{"REDIS_MIN_REPLICAS", "REDIS_ADDRS"}},
		{map[string]string{"REDIS_URLS": "redis://:" + pw + "@a:1,redis://b:1", "REDIS_MIN_REPLICAS": "1"}, []string{"REDIS_MIN_REPLICAS", "REDIS_URLS"}},
		{map[string]string{"REDIS_CA_FILE": ca, "REDIS_PASSWORD": pw}, []string{"REDIS_CA_FILE", "REDIS_TLS", "REDIS_URLS"}},
		{map[string]string{"REDIS_CA_FILE": ca, "REDIS_CLUSTER_ADDRS": "c:1", "REDIS_TLS": "false"}, []string{"REDIS_CA_FILE", "REDIS_TLS"}},
		{map[string]string{"REDIS_CA_FILE": noPEM, "REDIS_TLS": "true"}, []string{"REDIS_CA_FILE"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.names, ","), func(t *testing.T) {
			_, err := Load(env(tt.env))
			if err == nil {
				t.Fatalf("Load accepted %v", tt.env)
			}
			msg := err.Error()
			for _, name := range tt.names {
				if !strings.Contains(msg, name) {
					t.Errorf("error %q does not name %s", msg, name)
				}
			}
			if !strings.HasPrefix(msg, "config: ") || strings.Contains(msg, "\n") || strings.Contains(msg, pw) || strings.Contains(msg, spw) {
				t.Errorf("error %q should be one line starting with config: and showing no password", msg)
			}
		})
	}
}

// TestLoadRedisCAFile: REDIS_CA_FILE verifies every TLS node, whatever
// made it one.
func TestLoadRedisCAFile(t *testing.T) {
	ca := writeCA(t)
	for _, e := range []map[string]string{
		{"REDIS_ADDRS": "a:1,b:1", "REDIS_TLS": "true"},
		{"REDIS_URLS": "rediss://a:1"},
		{"REDIS_CLUSTER_ADDRS": "c:1", "REDIS_TLS": "true"},
		{"REDIS_SENTINEL_ADDRS": "s:1", "REDIS_MASTER_NAME": "m", "REDIS_TLS": "true"},
	} {
		e["REDIS_CA_FILE"] = ca
		cfg, err := Load(env(e))
		if err != nil {
			t.Fatalf("%v: %v", e, err)
		}
		want := max(len(cfg.Redis), 1) // one per node, or the cluster's or Sentinel's
		if got := cfg.tlsConfigs(); len(got) != want {
			t.Errorf("%v: %d TLS configurations, want %d", e, len(got), want)
		}
		for _, c := range cfg.tlsConfigs() {
			if c.RootCAs == nil || c.MinVersion != tls.VersionTLS12 {
				t.Errorf("%v: TLS config %+v, want REDIS_CA_FILE's roots and TLS 1.2 or later", e, c)
			}
		}
	}
}

// writeCA writes a self-signed certificate in PEM and returns its path.
func writeCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestLoadTracing: tracing is off unless an endpoint or the otlp exporter
// is named, none and OTEL_SDK_DISABLED win, and the general endpoint gets
// the traces path appended while the traces one is used as given.
func TestLoadTracing(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Tracing
	}{
		{"nothing set", nil, Tracing{ServiceName: "lockd"}},
		{"endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
			Tracing{Enabled: true, Endpoint: "http://collector:4318/v1/traces", ServiceName: "lockd"}},
		{"endpoint with a path", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example/ingest/"},
			Tracing{Enabled: true, Endpoint: "https://otel.example/ingest/v1/traces", ServiceName: "lockd"}},
		{"traces endpoint wins", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://collector:4318",
			"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://traces:9999/custom",
		}, Tracing{Enabled: true, Endpoint: "http://traces:9999/custom", ServiceName: "lockd"}},
		{"exporter alone: the SDK's default endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"},
			Tracing{Enabled: true, ServiceName: "lockd"}},
		{"exporter none", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
			Tracing{Endpoint: "http://c:4318/v1/traces", ServiceName: "lockd"}},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"},
			Tracing{ServiceName: "lockd"}},
		{"service name and lock names", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SERVICE_NAME": "locks-eu",
			"OTEL_RECORD_LOCK_NAMES": "true", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		}, Tracing{Enabled: true, Endpoint: "http://c:4318/v1/traces", ServiceName: "locks-eu", RecordLockNames: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Tracing != tt.want {
				t.Errorf("got %+v, want %+v", cfg.Tracing, tt.want)
			}
		})
	}
}

// TestLoadTracingNeverEchoesTheEndpoint: an endpoint URL may carry a
// password; a bad one is refused without repeating it.
func TestLoadTracingNeverEchoesTheEndpoint(t *testing.T) {
	_, err := Load(env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://user:s3cret@collector:4318"}))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("err = %v, want a refusal that does not repeat the password", err)
	}
}
