// Package config reads lockd's settings from the environment, validates them
// once at start, and names the offending variable in every error so that a
// misconfigured process stops with a one-line reason.
package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
)

// Config holds every setting lockd reads. The zero value is not useful:
// call Load.
type Config struct {
	// Port is the HTTP port (PORT, default 8080; 0 picks a free port).
	Port int
	// ListenAddr is the address lockd listens on with Port: an IP address
	// or a host name (LISTEN_ADDR; empty, the default, is every
	// interface). Not HOST: zsh and some CI systems set HOST to the
	// machine's name, which would silently narrow where lockd listens.
	ListenAddr string
	// DemoEnabled serves the README's GET /lock (DEMO_ENABLED, default
	// true). It takes the same lock:NAME keys as /v1.
	DemoEnabled bool
	// Redis has one entry per independent Redis master: from REDIS_ADDR
	// (one node, default localhost:6379), REDIS_ADDRS (host:port,... for
	// quorum mode) or REDIS_URLS (redis:// or rediss:// URLs, one per
	// node). REDIS_PASSWORD and REDIS_DB apply to addresses, and to URLs
	// that do not set their own.
	// Each carries where and as whom to connect (address, credentials,
	// database, TLS); internal/lock makes every other go-redis setting.
	Redis []*redis.Options
	// MaxTTL is the longest lease the service grants; in quorum mode also
	// how long a restarted Redis node stays out of quorums (MAX_TTL,
	// default 1h, at most 1h).
	MaxTTL time.Duration
	// LockExpiry is the TTL of a demo lock (LOCK_EXPIRY, default 30s).
	LockExpiry time.Duration
	// CriticalSection is how long the demo's simulated operation runs
	// (CRITICAL_SECTION_DURATION, default 30s).
	CriticalSection time.Duration
	// LogFormat is "text" (the README's look) or "json" (LOG_FORMAT, default text).
	LogFormat string
	// ShutdownTimeout bounds how long in-flight requests may run after
	// SIGTERM before their work is cancelled (SHUTDOWN_TIMEOUT, default 10s).
	ShutdownTimeout time.Duration

	// APITokens, when not empty, are the bearer tokens /v1 accepts
	// (API_TOKENS, comma-separated, or API_TOKENS_FILE, one per line).
	APITokens []string
	// MetricsRequireAuth puts /metrics behind the same tokens
	// (METRICS_REQUIRE_AUTH, default false).
	MetricsRequireAuth bool
	// HTTP server limits (HTTP_READ_HEADER_TIMEOUT 5s, HTTP_READ_TIMEOUT
	// 30s, HTTP_WRITE_TIMEOUT above the longest wait or demo operation,
	// HTTP_IDLE_TIMEOUT 60s, HTTP_MAX_HEADER_BYTES 16 KiB, MAX_BODY_BYTES
	// 64 KiB), the per-replica cap on waiting requests (MAX_WAITERS, 1000)
	// and the proxies whose X-Forwarded-For is believed (TRUSTED_PROXIES,
	// none).
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	MaxBodyBytes                                              int64
	MaxWaiters                                                int
	TrustedProxies                                            []string

	// ReplicaName names this replica in lock events (REPLICA_NAME; empty:
	// cmd/lockd uses hostname:port).
	ReplicaName string
	// LegacyKeys makes /v1 grants use the three-key layout of earlier releases,
	// for the length of a rolling upgrade or a rollback (LEGACY_KEYS,
	// false; see doc/FENCING.md).
	LegacyKeys bool
	// UIPeers are the base URLs of the other replicas the dashboard talks
	// to, and the only origins CORS lets call this one (UI_PEERS,
	// comma-separated, e.g. http://localhost:8082; none by default).
	UIPeers []string
}

// minTokenLen keeps guessable API tokens out.
const minTokenLen = 16

// Bounds on durations. The expiry floor leaves the keep-alive, which extends
// at a third of the expiry, room for a few Redis round trips per period.
const (
	minLockExpiry = time.Second
	maxDuration   = 24 * time.Hour
)

// Load reads the configuration through getenv (os.Getenv in production, a
// map in tests). It returns an error naming the first invalid variable.
// The lock domain's ceilings, which bound MAX_TTL and the write timeout.
// They equal lock.MaxTTL and lock.MaxWait (cmd/lockd's tests check it):
// config imports no other package of the project, so that settings are read
// and checked in one place that depends on nothing.
const (
	LongestTTL  = time.Hour
	LongestWait = 5 * time.Minute
)

func Load(getenv func(string) string) (Config, error) {
	var cfg Config
	p := parser{getenv: getenv}

	cfg.Port = p.intRange("PORT", 8080, 0, 65535)
	cfg.ListenAddr = p.host("LISTEN_ADDR")
	cfg.DemoEnabled = p.boolean("DEMO_ENABLED", true)
	password := getenv("REDIS_PASSWORD")
	db := p.intRange("REDIS_DB", 0, 0, 1<<20)
	cfg.MaxTTL = p.duration("MAX_TTL", LongestTTL, time.Second, LongestTTL)
	cfg.LockExpiry = p.duration("LOCK_EXPIRY", 30*time.Second, minLockExpiry, maxDuration)
	cfg.CriticalSection = p.duration("CRITICAL_SECTION_DURATION", 30*time.Second, 0, maxDuration)
	cfg.LogFormat = p.oneOf("LOG_FORMAT", "text", "text", "json")
	cfg.ShutdownTimeout = p.duration("SHUTDOWN_TIMEOUT", 10*time.Second, 0, time.Hour)
	if p.err != nil {
		return Config{}, p.err
	}
	if cfg.LockExpiry > cfg.MaxTTL {
		return Config{}, fmt.Errorf("config: LOCK_EXPIRY: %v is longer than MAX_TTL (%v)", cfg.LockExpiry, cfg.MaxTTL)
	}
	var err error
	cfg.Redis, err = redisNodes(getenv, password, db)
	if err != nil {
		return Config{}, err
	}
	if err := redisCA(getenv, cfg.Redis); err != nil {
		return Config{}, err
	}
	if cfg.APITokens, err = apiTokens(getenv); err != nil {
		return Config{}, err
	}
	cfg.MetricsRequireAuth = p.boolean("METRICS_REQUIRE_AUTH", false)
	cfg.ReadHeaderTimeout = p.duration("HTTP_READ_HEADER_TIMEOUT", 5*time.Second, 100*time.Millisecond, time.Hour)
	cfg.ReadTimeout = p.duration("HTTP_READ_TIMEOUT", 30*time.Second, 100*time.Millisecond, time.Hour)
	// Writing the answer is the last step of the longest request: a wait
	// of up to LongestWait, or the demo's whole critical section.
	longest := max(LongestWait, cfg.CriticalSection+10*time.Second)
	cfg.WriteTimeout = p.duration("HTTP_WRITE_TIMEOUT", longest+30*time.Second, longest+time.Second, 48*time.Hour)
	cfg.IdleTimeout = p.duration("HTTP_IDLE_TIMEOUT", time.Minute, time.Second, 24*time.Hour)
	cfg.MaxHeaderBytes = p.intRange("HTTP_MAX_HEADER_BYTES", 16<<10, 4<<10, 1<<20)
	cfg.MaxBodyBytes = int64(p.intRange("MAX_BODY_BYTES", 64<<10, 1<<10, 16<<20))
	cfg.MaxWaiters = p.intRange("MAX_WAITERS", 1000, 1, 1_000_000)
	cfg.TrustedProxies = p.list("TRUSTED_PROXIES")
	cfg.ReplicaName = strings.TrimSpace(getenv("REPLICA_NAME"))
	cfg.LegacyKeys = p.boolean("LEGACY_KEYS", false)
	cfg.UIPeers = p.list("UI_PEERS")
	if p.err != nil {
		return Config{}, p.err
	}
	for _, tp := range cfg.TrustedProxies {
		if net.ParseIP(tp) == nil {
			if _, _, err := net.ParseCIDR(tp); err != nil {
				return Config{}, fmt.Errorf("config: TRUSTED_PROXIES: %q is not an IP address or CIDR", tp)
			}
		}
	}
	if len(cfg.ReplicaName) > 128 || strings.ContainsFunc(cfg.ReplicaName, unicode.IsControl) {
		return Config{}, errors.New("config: REPLICA_NAME: at most 128 characters, none of them control characters")
	}
	for i, peer := range cfg.UIPeers {
		origin, err := peerOrigin(peer)
		if err != nil {
			return Config{}, fmt.Errorf("config: UI_PEERS: entry %d: %w", i+1, err)
		}
		cfg.UIPeers[i] = origin
	}
	return cfg, nil
}

// peerOrigin checks a UI_PEERS entry, an http or https base URL with no
// path beyond "/", and returns it as an origin: scheme://host[:port].
func peerOrigin(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q is not a base URL such as http://localhost:8082", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// apiTokens reads API_TOKENS or API_TOKENS_FILE (one per line, blank lines
// and # comments skipped). Errors never repeat a token.
func apiTokens(getenv func(string) string) ([]string, error) {
	raw, file := strings.TrimSpace(getenv("API_TOKENS")), strings.TrimSpace(getenv("API_TOKENS_FILE"))
	var tokens []string
	name := "API_TOKENS"
	switch {
	case raw != "" && file != "":
		return nil, errors.New("config: API_TOKENS, API_TOKENS_FILE: set only one of them")
	case raw != "":
		tokens = strings.Split(raw, ",")
	case file != "":
		name = "API_TOKENS_FILE"
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("config: API_TOKENS_FILE: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				tokens = append(tokens, line)
			}
		}
		if len(tokens) == 0 {
			return nil, fmt.Errorf("config: API_TOKENS_FILE: %s holds no token", file)
		}
	}
	out := tokens[:0]
	for i, t := range tokens {
		t = strings.TrimSpace(t)
		if len(t) < minTokenLen || strings.ContainsAny(t, " \t\r") {
			return nil, fmt.Errorf("config: %s: token %d is shorter than %d characters or holds spaces", name, i+1, minTokenLen)
		}
		out = append(out, t)
	}
	return out, nil
}

// redisCA loads REDIS_CA_FILE, a PEM bundle, as the roots that verify every
// rediss:// node (instead of the system's).
func redisCA(getenv func(string) string, nodes []*redis.Options) error {
	file := strings.TrimSpace(getenv("REDIS_CA_FILE"))
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("config: REDIS_CA_FILE: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("config: REDIS_CA_FILE: %s holds no PEM certificate", file)
	}
	tlsNodes := 0
	for _, n := range nodes {
		if n.TLSConfig != nil {
			n.TLSConfig.RootCAs = pool
			tlsNodes++
		}
	}
	if tlsNodes == 0 {
		return errors.New("config: REDIS_CA_FILE: no node uses TLS; name them with rediss:// URLs in REDIS_URLS")
	}
	return nil
}

// maxNodes bounds quorum mode; Redlock's own advice is 5.
const maxNodes = 9

// redisNodes reads the one variable of REDIS_ADDR, REDIS_ADDRS and
// REDIS_URLS that is set. Errors never repeat a URL: it may hold a
// password.
func redisNodes(getenv func(string) string, password string, db int) ([]*redis.Options, error) {
	var set []string
	for _, name := range []string{"REDIS_ADDR", "REDIS_ADDRS", "REDIS_URLS"} {
		if strings.TrimSpace(getenv(name)) != "" {
			set = append(set, name)
		}
	}
	if len(set) > 1 {
		return nil, fmt.Errorf("config: %s: set only one of them", strings.Join(set, ", "))
	}
	name := "REDIS_ADDR"
	if len(set) == 1 {
		name = set[0]
	}
	raw := strings.TrimSpace(getenv(name))
	if raw == "" {
		raw = "localhost:6379"
	}
	entries := strings.Split(raw, ",")
	if name == "REDIS_ADDR" && len(entries) > 1 {
		return nil, fmt.Errorf("config: REDIS_ADDR: one host:port; use REDIS_ADDRS for several nodes")
	}
	if len(entries) > maxNodes {
		return nil, fmt.Errorf("config: %s: %d nodes, at most %d", name, len(entries), maxNodes)
	}
	var nodes []*redis.Options
	seen := map[string]bool{}
	for i, e := range entries {
		e = strings.TrimSpace(e)
		var o *redis.Options
		if name == "REDIS_URLS" {
			var err error
			if o, err = redis.ParseURL(e); err != nil {
				return nil, fmt.Errorf("config: REDIS_URLS: entry %d is not a valid redis:// or rediss:// URL", i+1)
			}
			if o.Password == "" {
				o.Password = password
			}
			if u, _ := url.Parse(e); u.Path == "" || u.Path == "/" {
				o.DB = db // the URL names no database
			}
		} else {
			if err := checkAddr(e); err != nil {
				return nil, fmt.Errorf("config: %s: entry %d: %w", name, i+1, err)
			}
			o = &redis.Options{Addr: e, Password: password, DB: db}
		}
		if seen[o.Addr] {
			return nil, fmt.Errorf("config: %s: %s is listed twice; quorum mode needs independent nodes", name, o.Addr)
		}
		seen[o.Addr] = true
		nodes = append(nodes, o)
	}
	return nodes, nil
}

// Addrs lists the nodes' host:port, for logs (never credentials).
func (c Config) Addrs() string {
	addrs := make([]string, len(c.Redis))
	for i, o := range c.Redis {
		addrs[i] = o.Addr
	}
	return strings.Join(addrs, ",")
}

// parser keeps the first error so Load reads as a flat list of variables.
type parser struct {
	getenv func(string) string
	err    error
}

func (p *parser) fail(name, raw, why string) {
	if p.err == nil {
		p.err = fmt.Errorf("config: %s: %q %s", name, raw, why)
	}
}

func (p *parser) intRange(name string, def, lo, hi int) int {
	raw := strings.TrimSpace(p.getenv(name))
	if raw == "" {
		return def
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < lo || n > hi {
		p.fail(name, raw, fmt.Sprintf("is not a whole number from %d to %d", lo, hi))
		return def
	}
	return n
}

func (p *parser) duration(name string, def, lo, hi time.Duration) time.Duration {
	raw := strings.TrimSpace(p.getenv(name))
	if raw == "" {
		return def
	}
	d, err := time.ParseDuration(raw)
	if err != nil {
		p.fail(name, raw, "is not a duration (write it like 30s, 500ms or 1m)")
		return def
	}
	if d < lo || d > hi {
		p.fail(name, raw, fmt.Sprintf("is out of range (%v to %v)", lo, hi))
		return def
	}
	return d
}

func (p *parser) boolean(name string, def bool) bool {
	raw := strings.TrimSpace(p.getenv(name))
	if raw == "" {
		return def
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		p.fail(name, raw, "is not true or false")
		return def
	}
	return b
}

// host reads an IP address or a host name to listen on; empty is every
// interface. IPv6 addresses may be given with or without brackets. No
// port: that is PORT.
func (p *parser) host(name string) string {
	raw := strings.TrimSpace(p.getenv(name))
	h := raw
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if h == "" || net.ParseIP(h) != nil || validHostname(h) {
		return h
	}
	p.fail(name, raw, "is not an IP address or host name (without a port: the port is PORT)")
	return ""
}

// validHostname accepts a DNS name: dot-separated labels of letters,
// digits and hyphens, 1 to 63 bytes each, not starting or ending with a
// hyphen, at most 253 bytes in all.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// list splits a comma-separated value, dropping empty entries.
func (p *parser) list(name string) []string {
	var out []string
	for _, v := range strings.Split(p.getenv(name), ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func (p *parser) oneOf(name, def string, allowed ...string) string {
	raw := strings.TrimSpace(p.getenv(name))
	if raw == "" {
		return def
	}
	for _, a := range allowed {
		if strings.EqualFold(raw, a) {
			return a
		}
	}
	p.fail(name, raw, "must be one of "+strings.Join(allowed, ", "))
	return def
}

// checkAddr accepts host:port with a numeric port, the form go-redis dials.
func checkAddr(addr string) error {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 {
		return fmt.Errorf("%q is not host:port", addr)
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("%q has no valid port", addr)
	}
	return nil
}
