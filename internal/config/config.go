// Package config reads lockd's settings from the environment, validates them
// once at start, and names the offending variable in every error so that a
// misconfigured process stops with a one-line reason.
package config

import (
	"crypto/tls"
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
	// (one node; localhost:6379 when no other mode is set), REDIS_ADDRS
	// (host:port,... for quorum mode) or REDIS_URLS (redis:// or rediss://
	// URLs, one per node). REDIS_USERNAME, REDIS_PASSWORD and REDIS_DB
	// apply to addresses, and to URLs that do not set their own; REDIS_TLS
	// to addresses (a URL's scheme decides for itself).
	// Each carries where and as whom to connect (address, credentials,
	// database, TLS); internal/lock makes every other go-redis setting.
	// It is empty in cluster and Sentinel mode.
	Redis []*redis.Options
	// RedisCluster, when set, is a Redis Cluster found through its seed
	// nodes (REDIS_CLUSTER_ADDRS, host:port,...), with REDIS_USERNAME,
	// REDIS_PASSWORD and REDIS_TLS. A cluster has only database 0, so
	// REDIS_DB must be 0.
	RedisCluster *redis.ClusterOptions
	// RedisSentinel, when set, is the master that the sentinels of
	// REDIS_SENTINEL_ADDRS (host:port,...) know as REDIS_MASTER_NAME.
	// The sentinels are asked as REDIS_SENTINEL_USERNAME with
	// REDIS_SENTINEL_PASSWORD (not REDIS_PASSWORD: sentinels have their
	// own); the master as REDIS_USERNAME with REDIS_PASSWORD, in REDIS_DB.
	// REDIS_TLS applies to both, with the same TLSConfig (go-redis dials
	// sentinels and master with it).
	RedisSentinel *redis.FailoverOptions
	// MinReplicas is how many replicas must acknowledge each grant and
	// extend (Redis's WAIT) before it is answered (REDIS_MIN_REPLICAS,
	// default 0: no WAIT; at most 16). It is refused in quorum mode, whose
	// nodes are independent masters; one Redis with replicas, a cluster
	// and Sentinel take it.
	MinReplicas int
	// ReplicaTimeout bounds that wait (REDIS_REPLICA_TIMEOUT, default
	// 500ms, 1ms to 10s: WAIT takes whole milliseconds, and 0 would wait
	// for ever).
	ReplicaTimeout time.Duration
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
	// Tracing is where OpenTelemetry traces go, if anywhere (OTEL_*; see
	// Tracing).
	Tracing Tracing
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
	conn := redisConn{
		username: strings.TrimSpace(getenv("REDIS_USERNAME")),
		password: getenv("REDIS_PASSWORD"),
		db:       p.intRange("REDIS_DB", 0, 0, 1<<20),
		tls:      p.boolean("REDIS_TLS", false),
	}
	cfg.MinReplicas = p.intRange("REDIS_MIN_REPLICAS", 0, 0, maxMinReplicas)
	cfg.ReplicaTimeout = p.duration("REDIS_REPLICA_TIMEOUT", 500*time.Millisecond, time.Millisecond, 10*time.Second)
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
	if err := loadRedis(getenv, &cfg, conn); err != nil {
		return Config{}, err
	}
	var err error
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
	cfg.Tracing = loadTracing(&p)
	if p.err != nil {
		return Config{}, p.err
	}
	if cfg.LegacyKeys && cfg.RedisCluster != nil {
		// Releases before cluster mode never ran on a cluster: there is no
		// old layout to keep, and its per-name keys cross slots.
		return Config{}, errors.New("config: LEGACY_KEYS, REDIS_CLUSTER_ADDRS: no earlier release ran on a cluster; leave LEGACY_KEYS unset")
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
// node reached over TLS (instead of the system's).
func redisCA(getenv func(string) string, cfg *Config) error {
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
	tlsConfigs := cfg.tlsConfigs()
	for _, c := range tlsConfigs {
		c.RootCAs = pool
	}
	if len(tlsConfigs) == 0 {
		return errors.New("config: REDIS_CA_FILE: no node uses TLS; set REDIS_TLS=true, or name the nodes with rediss:// URLs in REDIS_URLS")
	}
	return nil
}

// tlsConfigs are the TLS configurations of the nodes that use TLS: one per
// node, or the cluster's or Sentinel's one.
func (c *Config) tlsConfigs() []*tls.Config {
	var out []*tls.Config
	for _, n := range c.Redis {
		if n.TLSConfig != nil {
			out = append(out, n.TLSConfig)
		}
	}
	if c.RedisCluster != nil && c.RedisCluster.TLSConfig != nil {
		out = append(out, c.RedisCluster.TLSConfig)
	}
	if c.RedisSentinel != nil && c.RedisSentinel.TLSConfig != nil {
		out = append(out, c.RedisSentinel.TLSConfig)
	}
	return out
}

// maxNodes bounds quorum mode; Redlock's own advice is 5.
const maxNodes = 9

// maxSeeds bounds the seed nodes of a cluster and the sentinels: go-redis
// needs one that answers to find the rest.
const maxSeeds = 16

// maxMinReplicas bounds REDIS_MIN_REPLICAS: more replicas than this per
// master is not a deployment lockd expects.
const maxMinReplicas = 16

// redisModes are the variables that each name a way to reach Redis; at
// most one is set.
var redisModes = []string{"REDIS_ADDR", "REDIS_ADDRS", "REDIS_URLS", "REDIS_CLUSTER_ADDRS", "REDIS_SENTINEL_ADDRS"}

// redisConn is what every mode shares: as whom to connect, to which
// database, and whether over TLS.
type redisConn struct {
	username, password string
	db                 int
	tls                bool
}

// loadRedis sets cfg's Redis, RedisCluster or RedisSentinel from the one
// mode variable that is set, checks the variables that go with it, and
// loads REDIS_CA_FILE. Errors never repeat a password or a URL.
func loadRedis(getenv func(string) string, cfg *Config, conn redisConn) error {
	var set []string
	for _, name := range redisModes {
		if strings.TrimSpace(getenv(name)) != "" {
			set = append(set, name)
		}
	}
	if len(set) > 1 {
		return fmt.Errorf("config: %s: set only one of them", strings.Join(set, ", "))
	}
	mode := "REDIS_ADDR"
	if len(set) == 1 {
		mode = set[0]
	}
	sentinel := sentinelAuth{
		master:   strings.TrimSpace(getenv("REDIS_MASTER_NAME")),
		username: strings.TrimSpace(getenv("REDIS_SENTINEL_USERNAME")),
		password: getenv("REDIS_SENTINEL_PASSWORD"),
	}
	if mode != "REDIS_SENTINEL_ADDRS" {
		var only []string
		for _, name := range []string{"REDIS_MASTER_NAME", "REDIS_SENTINEL_USERNAME", "REDIS_SENTINEL_PASSWORD"} {
			if strings.TrimSpace(getenv(name)) != "" {
				only = append(only, name)
			}
		}
		if len(only) > 0 {
			return fmt.Errorf("config: %s: set only with REDIS_SENTINEL_ADDRS", strings.Join(only, ", "))
		}
	}
	if conn.tls && mode == "REDIS_URLS" {
		return errors.New("config: REDIS_TLS, REDIS_URLS: a URL's scheme says whether it uses TLS (rediss://); leave REDIS_TLS unset")
	}
	if conn.username != "" && conn.password == "" && mode != "REDIS_URLS" {
		return errors.New("config: REDIS_USERNAME: needs REDIS_PASSWORD (without a password go-redis sends no user, and every command would run as the default user)")
	}
	raw := strings.TrimSpace(getenv(mode))
	var err error
	switch mode {
	case "REDIS_CLUSTER_ADDRS":
		cfg.RedisCluster, err = clusterOptions(raw, conn)
	case "REDIS_SENTINEL_ADDRS":
		cfg.RedisSentinel, err = sentinelOptions(raw, conn, sentinel)
	default:
		if raw == "" {
			raw = "localhost:6379"
		}
		cfg.Redis, err = redisNodes(mode, raw, conn)
	}
	if err != nil {
		return err
	}
	if cfg.MinReplicas > 0 && len(cfg.Redis) > 1 {
		return fmt.Errorf("config: REDIS_MIN_REPLICAS, %s: quorum mode's nodes are independent masters; "+
			"REDIS_MIN_REPLICAS is for one Redis with replicas, a cluster or Sentinel", mode)
	}
	return redisCA(getenv, cfg)
}

// newTLS is the client TLS configuration of REDIS_TLS: TLS 1.2 or later,
// and the server's certificate checked against host. An empty host leaves
// crypto/tls to take it from each address dialed: in cluster and Sentinel
// mode go-redis dials nodes it learns from Redis with one configuration.
func newTLS(host string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
}

// redisNodes reads the nodes of REDIS_ADDR, REDIS_ADDRS or REDIS_URLS
// (name), whose value is raw.
func redisNodes(name, raw string, conn redisConn) ([]*redis.Options, error) {
	entries := strings.Split(raw, ",")
	if name == "REDIS_ADDR" && len(entries) > 1 {
		return nil, fmt.Errorf("config: REDIS_ADDR: one host:port; use REDIS_ADDRS for several nodes")
	}
	if name != "REDIS_URLS" {
		addrs, err := addrList(name, raw, maxNodes)
		if err != nil {
			return nil, err
		}
		var nodes []*redis.Options
		for _, a := range addrs {
			o := &redis.Options{Addr: a, Username: conn.username, Password: conn.password, DB: conn.db}
			if conn.tls {
				o.TLSConfig = newTLS(hostOf(a))
			}
			nodes = append(nodes, o)
		}
		return nodes, nil
	}
	if len(entries) > maxNodes {
		return nil, fmt.Errorf("config: REDIS_URLS: %d nodes, at most %d", len(entries), maxNodes)
	}
	var nodes []*redis.Options
	var addrs []string
	for i, e := range entries {
		e = strings.TrimSpace(e)
		o, err := redis.ParseURL(e)
		if err != nil {
			return nil, fmt.Errorf("config: REDIS_URLS: entry %d is not a valid redis:// or rediss:// URL", i+1)
		}
		names := "REDIS_URLS" // where the user comes from
		if o.Username == "" && conn.username != "" {
			o.Username, names = conn.username, "REDIS_USERNAME, REDIS_URLS"
		}
		if o.Password == "" {
			o.Password = conn.password
		}
		if o.Username != "" && o.Password == "" {
			return nil, fmt.Errorf("config: %s: entry %d has a user but no password, and REDIS_PASSWORD is empty "+
				"(without a password go-redis sends no user)", names, i+1)
		}
		if u, _ := url.Parse(e); u.Path == "" || u.Path == "/" {
			o.DB = conn.db // the URL names no database
		}
		nodes = append(nodes, o)
		addrs = append(addrs, o.Addr)
	}
	return nodes, noDuplicates(name, addrs)
}

// clusterOptions reads REDIS_CLUSTER_ADDRS, the cluster's seed nodes.
func clusterOptions(raw string, conn redisConn) (*redis.ClusterOptions, error) {
	if conn.db != 0 {
		return nil, errors.New("config: REDIS_DB, REDIS_CLUSTER_ADDRS: Redis Cluster has only database 0; leave REDIS_DB unset or 0")
	}
	addrs, err := addrList("REDIS_CLUSTER_ADDRS", raw, maxSeeds)
	if err != nil {
		return nil, err
	}
	o := &redis.ClusterOptions{Addrs: addrs, Username: conn.username, Password: conn.password}
	if conn.tls {
		o.TLSConfig = newTLS("")
	}
	return o, nil
}

// sentinelAuth is what Sentinel mode alone reads: the master's name and
// the sentinels' own credentials.
type sentinelAuth struct {
	master, username, password string
}

// sentinelOptions reads REDIS_SENTINEL_ADDRS, the sentinels, and the
// variables that go with them.
func sentinelOptions(raw string, conn redisConn, s sentinelAuth) (*redis.FailoverOptions, error) {
	if s.master == "" {
		return nil, errors.New("config: REDIS_SENTINEL_ADDRS, REDIS_MASTER_NAME: Sentinel mode needs REDIS_MASTER_NAME, the name the sentinels monitor the master under")
	}
	if len(s.master) > 128 || strings.ContainsFunc(s.master, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return nil, errors.New("config: REDIS_MASTER_NAME: at most 128 characters, no spaces or control characters")
	}
	if s.username != "" && s.password == "" {
		return nil, errors.New("config: REDIS_SENTINEL_USERNAME: needs REDIS_SENTINEL_PASSWORD (without a password go-redis sends no user)")
	}
	addrs, err := addrList("REDIS_SENTINEL_ADDRS", raw, maxSeeds)
	if err != nil {
		return nil, err
	}
	o := &redis.FailoverOptions{
		MasterName: s.master, SentinelAddrs: addrs,
		SentinelUsername: s.username, SentinelPassword: s.password,
		Username: conn.username, Password: conn.password, DB: conn.db,
	}
	if conn.tls {
		o.TLSConfig = newTLS("")
	}
	return o, nil
}

// addrList reads name's host:port list, raw, of at most limit entries.
func addrList(name, raw string, limit int) ([]string, error) {
	entries := strings.Split(raw, ",")
	if len(entries) > limit {
		return nil, fmt.Errorf("config: %s: %d nodes, at most %d", name, len(entries), limit)
	}
	addrs := make([]string, len(entries))
	for i, e := range entries {
		addrs[i] = strings.TrimSpace(e)
		if err := checkAddr(addrs[i]); err != nil {
			return nil, fmt.Errorf("config: %s: entry %d: %w", name, i+1, err)
		}
	}
	return addrs, noDuplicates(name, addrs)
}

// noDuplicates refuses an address listed twice: in quorum mode two
// entries for one node would vote twice, and elsewhere it is a typo.
func noDuplicates(name string, addrs []string) error {
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			return fmt.Errorf("config: %s: %s is listed twice; every entry must be a different node", name, a)
		}
		seen[a] = true
	}
	return nil
}

// hostOf is the host of a host:port checkAddr accepted, without the
// brackets of an IPv6 address.
func hostOf(addr string) string {
	return strings.Trim(addr[:strings.LastIndexByte(addr, ':')], "[]")
}

// RedisMode names how lockd reaches Redis, for logs: "single" (one node),
// "quorum", "cluster" or "sentinel".
func (c Config) RedisMode() string {
	switch {
	case c.RedisCluster != nil:
		return "cluster"
	case c.RedisSentinel != nil:
		return "sentinel"
	case len(c.Redis) > 1:
		return "quorum"
	default:
		return "single"
	}
}

// Addrs lists the configured host:port, for logs (never credentials): the
// nodes, the cluster's seed nodes, or the sentinels.
func (c Config) Addrs() string {
	switch {
	case c.RedisCluster != nil:
		return strings.Join(c.RedisCluster.Addrs, ",")
	case c.RedisSentinel != nil:
		return strings.Join(c.RedisSentinel.SentinelAddrs, ",")
	}
	addrs := make([]string, len(c.Redis))
	for i, o := range c.Redis {
		addrs[i] = o.Addr
	}
	return strings.Join(addrs, ",")
}

// RedisDB is the logical database, for logs: always 0 in cluster mode, and
// the first node's in quorum mode (URLs may name others).
func (c Config) RedisDB() int {
	switch {
	case c.RedisSentinel != nil:
		return c.RedisSentinel.DB
	case len(c.Redis) > 0:
		return c.Redis[0].DB
	default:
		return 0
	}
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
