// Package config reads lockd's settings from the environment, validates them
// once at start, and names the offending variable in every error so that a
// misconfigured process stops with a one-line reason.
package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config holds every setting lockd reads. The zero value is not useful:
// call Load.
type Config struct {
	// Port is the HTTP port (PORT, default 8080; 0 picks a free port).
	Port int
	// RedisAddr is host:port of the Redis server (REDIS_ADDR, default localhost:6379).
	RedisAddr string
	// RedisPassword authenticates to Redis (REDIS_PASSWORD, default none).
	RedisPassword string
	// RedisDB selects the logical database (REDIS_DB, default 0).
	RedisDB int
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
}

// Bounds on durations. The expiry floor leaves the keep-alive, which extends
// at a third of the expiry, room for a few Redis round trips per period.
const (
	minLockExpiry = time.Second
	maxDuration   = 24 * time.Hour
)

// Load reads the configuration through getenv (os.Getenv in production, a
// map in tests). It returns an error naming the first invalid variable.
func Load(getenv func(string) string) (Config, error) {
	var cfg Config
	p := parser{getenv: getenv}

	cfg.Port = p.intRange("PORT", 8080, 0, 65535)
	cfg.RedisAddr = p.str("REDIS_ADDR", "localhost:6379")
	cfg.RedisPassword = getenv("REDIS_PASSWORD")
	cfg.RedisDB = p.intRange("REDIS_DB", 0, 0, 1<<20)
	cfg.LockExpiry = p.duration("LOCK_EXPIRY", 30*time.Second, minLockExpiry, maxDuration)
	cfg.CriticalSection = p.duration("CRITICAL_SECTION_DURATION", 30*time.Second, 0, maxDuration)
	cfg.LogFormat = p.oneOf("LOG_FORMAT", "text", "text", "json")
	cfg.ShutdownTimeout = p.duration("SHUTDOWN_TIMEOUT", 10*time.Second, 0, time.Hour)
	if p.err != nil {
		return Config{}, p.err
	}
	if err := checkAddr(cfg.RedisAddr); err != nil {
		return Config{}, fmt.Errorf("config: REDIS_ADDR: %w", err)
	}
	return cfg, nil
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

func (p *parser) str(name, def string) string {
	if v := strings.TrimSpace(p.getenv(name)); v != "" {
		return v
	}
	return def
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
