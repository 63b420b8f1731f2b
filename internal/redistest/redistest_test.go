package redistest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// TestTLS checks that a TLS server answers only TLS clients that trust its
// CA, and that a client built from CAFile alone, as lockd builds one, does.
func TestTLS(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{TLS: true, Password: "pw"})
	ctx := context.Background()
	if !s.TLS || s.CAFile == "" {
		t.Fatalf("got TLS %v, CAFile %q; want both set", s.TLS, s.CAFile)
	}

	if err := s.Client(t, 0).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over TLS: %v", err)
	}

	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no PEM certificate", s.CAFile)
	}
	if err := ping(t, &redis.Options{Addr: s.Addr, Password: "pw",
		TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}}); err != nil {
		t.Errorf("PING with a client trusting only CAFile: %v", err)
	}

	if err := ping(t, &redis.Options{Addr: s.Addr, Password: "pw"}); err == nil {
		t.Error("a plaintext PING to the TLS port succeeded")
	}

	other, err := redistest.WriteCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pem, err = os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	wrong := x509.NewCertPool()
	wrong.AppendCertsFromPEM(pem)
	err = ping(t, &redis.Options{Addr: s.Addr, Password: "pw",
		TLSConfig: &tls.Config{RootCAs: wrong, ServerName: "127.0.0.1"}})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("PING trusting an unrelated CA: got %v, want x509.UnknownAuthorityError", err)
	}
}

// TestMonitorTLS checks that MONITOR works over TLS.
func TestMonitorTLS(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{TLS: true})
	mon := s.Monitor(t)
	if err := s.Client(t, 0).Set(context.Background(), "monitored", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	mon.WaitFor(t, `"monitored"`, 5*time.Second)
}

// TestLockdACL checks that a user with LockdACL can run what lockd runs,
// on lockd's keys and channel, and nothing else.
func TestLockdACL(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, redistest.Options{Password: "admin", Users: []string{"lockd on >secret " + lock.LockdACL}})
	ctx := context.Background()
	o := s.ClientOptions(0)
	o.Username, o.Password = "lockd", "secret"
	c := redis.NewClient(o)
	t.Cleanup(func() { _ = c.Close() })

	// What lockd's /v1 scripts call, on the keys they are given.
	fence := `local f = tonumber(redis.call("GET", KEYS[2]) or "0") + 1
redis.call("SET", KEYS[2], f)
redis.call("SET", KEYS[1], f .. "|tok", "PX", 60000)
redis.call("HSET", KEYS[5], "fence", f)
redis.call("HMGET", KEYS[5], "fence")
redis.call("DEL", KEYS[4], KEYS[5])
redis.call("XADD", KEYS[3], "MAXLEN", "~", "10000", "*", "data", "{}")
redis.call("PUBLISH", "lockd:released", "1 a")
return redis.call("PTTL", KEYS[1])`
	sha, err := c.ScriptLoad(ctx, fence).Result()
	if err != nil {
		t.Fatalf("SCRIPT LOAD: %v", err)
	}
	lockKeys := []any{"5", "lock:a", "lockd:fence:{x}", "lockd:events", "lockfence:a", "lockmeta:a"}
	for _, tc := range []struct {
		name    string
		args    []any
		allowed bool
	}{
		{"set nx px", []any{"SET", "lock:a", "tok", "NX", "PX", "60000"}, true},
		{"get", []any{"GET", "lock:a"}, true},
		{"pttl", []any{"PTTL", "lock:a"}, true},
		{"pexpire", []any{"PEXPIRE", "lock:a", "60000"}, true},
		{"eval", append([]any{"EVAL", fence}, lockKeys...), true},
		{"evalsha", append([]any{"EVALSHA", sha}, lockKeys...), true},
		{"scan", []any{"SCAN", "0", "MATCH", "lock*"}, true},
		{"info", []any{"INFO", "server"}, true},
		{"marker", []any{"SET", "lockd:node", "run-id"}, true},
		{"publish", []any{"PUBLISH", "lockd:released", "a"}, true},
		{"xadd", []any{"XADD", "lockd:events", "MAXLEN", "~", "10000", "*", "data", "{}"}, true},
		{"xread", []any{"XREAD", "COUNT", "1", "STREAMS", "lockd:events", "0-0"}, true},
		{"xrevrange", []any{"XREVRANGE", "lockd:events", "+", "-", "COUNT", "1"}, true},
		{"ping", []any{"PING"}, true},
		{"del", []any{"DEL", "lock:a"}, true},

		{"other key", []any{"GET", "other"}, false},
		{"key sharing the prefix without the colon", []any{"SET", "locksmith", "x"}, false},
		{"script on another key", []any{"EVAL", `return redis.call("GET", KEYS[1])`, "1", "other"}, false},
		{"script reaching an undeclared key", []any{"EVAL", `return redis.call("GET", "other")`, "0"}, false},
		{"config get", []any{"CONFIG", "GET", "requirepass"}, false},
		{"keys", []any{"KEYS", "*"}, false},
		{"flushall", []any{"FLUSHALL"}, false},
		{"acl", []any{"ACL", "LIST"}, false},
		{"other channel", []any{"PUBLISH", "other", "a"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Do(ctx, tc.args...).Err()
			if errors.Is(err, redis.Nil) {
				err = nil
			}
			if tc.allowed && err != nil {
				t.Errorf("%v: got %v, want allowed", tc.args[0], err)
			}
			if !tc.allowed && !denied(err) {
				t.Errorf("%v: got %v, want an ACL refusal", tc.args[0], err)
			}
		})
	}

	t.Run("subscribe", func(t *testing.T) {
		for channel, allowed := range map[string]bool{"lockd:released": true, "other": false} {
			ps := c.Subscribe(ctx, channel)
			_, err := ps.Receive(ctx)
			_ = ps.Close()
			if allowed != (err == nil) {
				t.Errorf("SUBSCRIBE %s: got %v, want allowed %v", channel, err, allowed)
			}
		}
	})
	t.Run("select", func(t *testing.T) {
		o := s.ClientOptions(1)
		o.Username, o.Password = "lockd", "secret"
		if err := ping(t, o); err != nil {
			t.Errorf("PING on db 1: %v", err)
		}
	})
	t.Run("refusals logged", func(t *testing.T) {
		got := strings.Join(s.ACLRefusals(t), "\n")
		for _, want := range []string{"command flushall", "key other", "channel other"} {
			if !strings.Contains(got, want) {
				t.Errorf("ACL LOG lacks %q:\n%s", want, got)
			}
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		o := s.ClientOptions(0)
		o.Username, o.Password = "lockd", "not-the-secret"
		if err := ping(t, o); err == nil || !strings.Contains(err.Error(), "WRONGPASS") {
			t.Errorf("got %v, want WRONGPASS", err)
		}
	})
}

// TestUsersBadRule checks that a rule Redis refuses fails the start, and
// that the error names the user but not the rule's password.
func TestUsersBadRule(t *testing.T) {
	t.Parallel()
	redistest.Require(t)
	s, err := redistest.Run(t.TempDir(), redistest.Options{Users: []string{"someone on >hunter2 +no-such-command"}})
	if err == nil {
		s.Stop()
		t.Fatal("Run succeeded with a rule Redis refuses")
	}
	if msg := err.Error(); !strings.Contains(msg, "ACL SETUSER someone") || strings.Contains(msg, "hunter2") {
		t.Errorf("got %q, want the user named and the password left out", msg)
	}
}

// denied reports whether err is an ACL refusal: NOPERM, or the error a
// script gets when it reaches a key the user may not touch.
func denied(err error) bool {
	return err != nil && (strings.HasPrefix(err.Error(), "NOPERM") || strings.Contains(err.Error(), "can't access"))
}

// ping runs one PING with a fresh client and no retries.
func ping(t *testing.T, o *redis.Options) error {
	t.Helper()
	o.MaxRetries = -1
	o.DialTimeout = 2 * time.Second
	o.ReadTimeout = 2 * time.Second
	c := redis.NewClient(o)
	defer c.Close()
	return c.Ping(context.Background()).Err()
}
