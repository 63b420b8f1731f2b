package lock

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

func TestCheckVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		version string
		ok      bool
		want    string // in the refusal
	}{
		{"6.0.0", true, ""},
		{"6.2.14", true, ""},
		{"7.0.15", true, ""},
		{"7.2.4", true, ""},
		{"255.255.255", true, ""}, // an unstable build
		{"10.0.0", true, ""},
		{"5.0.14", false, "redis_version is 5.0.14: lockd's scripts need Redis 6.0 or later"},
		{"4.0.9", false, "upgrade to Redis 6.0 or later"},
		{"", false, "redis_version is missing from INFO server"},
		{"seven", false, `redis_version is "seven": lockd cannot read it`},
		{"7", false, "upgrade to Redis 6.0 or later"},
		{"7.x.1", false, "cannot read it"},
		{"-7.0.1", false, "cannot read it"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			r := checkVersion(tc.version)
			if got := r == nil; got != tc.ok {
				t.Fatalf("checkVersion(%q) = %v, want ok %v", tc.version, r, tc.ok)
			}
			if r != nil && !strings.Contains(r.Error(), tc.want) {
				t.Errorf("checkVersion(%q) = %q, want it to contain %q", tc.version, r.Error(), tc.want)
			}
			if r != nil && !strings.Contains(r.Error(), "fix: upgrade to Redis 6.0 or later") {
				t.Errorf("checkVersion(%q) = %q, want the fix named", tc.version, r.Error())
			}
		})
	}
}

func TestCheckPolicy(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
		"allkeys-lru", "allkeys-lfu", "allkeys-random", "some-future-policy"} {
		r := checkPolicy(policy)
		if r == nil {
			t.Errorf("checkPolicy(%q) = nil, want a refusal", policy)
			continue
		}
		for _, want := range []string{"maxmemory-policy is " + policy + ":", "fix: set maxmemory-policy noeviction"} {
			if !strings.Contains(r.Error(), want) {
				t.Errorf("checkPolicy(%q) = %q, want it to contain %q", policy, r.Error(), want)
			}
		}
	}
	if r := checkPolicy("noeviction"); r != nil {
		t.Errorf("checkPolicy(noeviction) = %v, want nil", r)
	}
	if r := checkPolicy(""); r == nil || !strings.Contains(r.Error(), "missing from INFO memory") {
		t.Errorf("checkPolicy(\"\") = %v, want a refusal saying INFO lacks it", r)
	}
}

// loggedManager returns an unprepared Manager over srvs that logs to the
// returned buffer.
func loggedManager(t *testing.T, srvs ...*redistest.Server) (*Manager, *redistest.Buffer) {
	t.Helper()
	logs := &redistest.Buffer{}
	var nodes []*redis.Options
	for _, s := range srvs {
		nodes = append(nodes, nodeOptions(s.Addr, "pw"))
	}
	m := New(Config{Nodes: nodes, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	t.Cleanup(func() { _ = m.Close() })
	return m, logs
}

// TestEvictingRedisIsRefused: a Redis whose maxmemory-policy can evict
// lock keys is not ready, at start and in Health, and the error names the
// setting, its value and the fix; it is logged once.
func TestEvictingRedisIsRefused(t *testing.T) {
	t.Parallel()
	for _, policy := range []string{"allkeys-lru", "volatile-ttl"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.Options{Password: "pw", Args: []string{"--maxmemory-policy", policy}})
			m, logs := loggedManager(t, srv)
			ctx := context.Background()
			wants := []string{"maxmemory-policy", policy, "noeviction"}

			err := m.Prepare(ctx)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("Prepare: got %v, want ErrUnavailable", err)
			}
			for _, want := range wants {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Prepare: got %q, want it to name %q", err, want)
				}
			}
			for range 2 {
				ok, nodes := m.Health(ctx, time.Second)
				if ok || len(nodes) != 1 || nodes[0].OK {
					t.Fatalf("Health: got %v %+v, want not ready", ok, nodes)
				}
				for _, want := range wants {
					if !strings.Contains(nodes[0].Err, want) {
						t.Errorf("Health: got %q, want it to name %q", nodes[0].Err, want)
					}
				}
			}
			log := logs.String()
			if n := strings.Count(log, "Redis node refused"); n != 1 {
				t.Errorf("logged the refusal %d times, want once (on the change):\n%s", n, log)
			}
			for _, want := range []string{"level=ERROR", "addr=" + srv.Addr, "setting=maxmemory-policy", "value=" + policy, "fix=\"set maxmemory-policy noeviction"} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %s:\n%s", want, log)
				}
			}
		})
	}
}

// TestPolicyChangedAtRuntime: Health reads the policy on every call, so a
// change made behind lockd's back shows at the next readiness check, and
// so does its undoing; each change is logged once.
func TestPolicyChangedAtRuntime(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Password: "pw"}) // Redis's default: noeviction
	m, logs := loggedManager(t, srv)
	ctx := context.Background()
	if err := m.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, nodes := m.Health(ctx, time.Second); !ok {
		t.Fatalf("Health over noeviction: got not ready %+v", nodes)
	}
	admin := srv.Client(t, 0)
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "volatile-lru").Err(); err != nil {
		t.Fatal(err)
	}
	ok, nodes := m.Health(ctx, time.Second)
	if ok || !strings.Contains(nodes[0].Err, "maxmemory-policy is volatile-lru") {
		t.Fatalf("Health after CONFIG SET volatile-lru: got %v %+v, want refused", ok, nodes)
	}
	if err := admin.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if ok, nodes := m.Health(ctx, time.Second); !ok || nodes[0].Err != "" {
		t.Fatalf("Health after CONFIG SET noeviction: got %v %+v, want ready", ok, nodes)
	}
	log := logs.String()
	if strings.Count(log, "Redis node refused") != 1 || strings.Count(log, "Redis node fit for locks again") != 1 {
		t.Errorf("want one refusal and one recovery logged:\n%s", log)
	}
}

// TestQuorumWithOneEvictingNode: one refused node of three leaves a
// quorum, so the Manager is ready, but the node is shown failing, with why.
func TestQuorumWithOneEvictingNode(t *testing.T) {
	t.Parallel()
	srvs := three(t)
	if err := srvs[2].Client(t, 0).ConfigSet(context.Background(), "maxmemory-policy", "allkeys-lfu").Err(); err != nil {
		t.Fatal(err)
	}
	m, logs := loggedManager(t, srvs...)
	ctx := context.Background()
	if err := m.Prepare(ctx); err != nil {
		t.Fatalf("Prepare with two fit nodes of three: %v", err)
	}
	// The nodes of a new cluster vote once they have been up freshUptime.
	for deadline := time.Now().Add(10 * time.Second); m.nodes[0].isOut() || m.nodes[1].isOut(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the nodes of a new cluster were not let in")
		}
		m.maintain(ctx)
	}
	ok, nodes := m.Health(ctx, time.Second)
	if !ok || !nodes[0].OK || !nodes[1].OK || nodes[2].OK || !strings.Contains(nodes[2].Err, "maxmemory-policy is allkeys-lfu") {
		t.Fatalf("Health: got %v %+v, want ready with node 2 refused", ok, nodes)
	}
	if !strings.Contains(logs.String(), "addr="+srvs[2].Addr) {
		t.Errorf("the refusal does not name node 2's address:\n%s", logs.String())
	}
}

// TestINFOForbidden: a user without INFO cannot show lockd its settings,
// so its node is refused, with the permission to grant.
func TestINFOForbidden(t *testing.T) {
	t.Parallel()
	rule := strings.Replace(LockdACL, " +info", "", 1)
	if rule == LockdACL {
		t.Fatal("LockdACL no longer grants +info; update this test")
	}
	srv := redistest.Start(t, redistest.Options{Password: "admin", Users: []string{"lockd on >pw " + rule}})
	o := nodeOptions(srv.Addr, "pw")
	o.Username = "lockd"
	m := New(Config{Nodes: []*redis.Options{o}, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = m.Close() })
	ok, nodes := m.Health(context.Background(), time.Second)
	if ok || !strings.Contains(nodes[0].Err, "NOPERM") || !strings.Contains(nodes[0].Err, "+info") {
		t.Fatalf("Health: got %v %+v, want refused naming +info", ok, nodes)
	}
}
