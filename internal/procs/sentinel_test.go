package procs_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// TestSentinelFailover starts a Sentinel set, with and without passwords,
// checks what the sentinels say of it, then kills the master and checks
// that a replica takes over with the data.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts redistest.SentinelOptions
	}{
		{"no passwords", redistest.SentinelOptions{}},
		{"passwords", redistest.SentinelOptions{Name: "locks", Password: "data-pw", SentinelPassword: "sentinel-pw"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s := redistest.StartSentinel(t, tc.opts)
			t.Logf("master, 2 replicas and 3 sentinels up in %v", time.Since(start).Round(time.Millisecond))
			ctx := context.Background()
			name := tc.opts.Name
			if name == "" {
				name = "mymaster"
			}
			old := s.Nodes[0]

			for _, r := range s.Sentinels {
				sc := redis.NewSentinelClient(r.ClientOptions(0))
				m, err := sc.Master(ctx, name).Result()
				if err != nil {
					t.Fatalf("SENTINEL MASTER %s on %s: %v", name, r.Addr, err)
				}
				for k, want := range map[string]string{"port": strconv.Itoa(old.Port), "flags": "master", "num-slaves": "2", "num-other-sentinels": "2", "quorum": "2"} {
					if got := m[k]; got != want {
						t.Errorf("SENTINEL MASTER %s on %s: got %s %q, want %q", name, r.Addr, k, got, want)
					}
				}
				replicas, err := sc.Replicas(ctx, name).Result()
				if err != nil || len(replicas) != 2 {
					t.Errorf("SENTINEL REPLICAS %s on %s: got %d, %v; want 2", name, r.Addr, len(replicas), err)
				}
				_ = sc.Close()
			}
			if tc.opts.Password != "" {
				noAuth(t, s.Nodes[0].Addr)
				noAuth(t, s.Sentinels[0].Addr)
			}
			if got, err := s.Master(); err != nil || got != old {
				t.Fatalf("Master() = %v, %v; want %s", addrOf(got), err, old.Addr)
			}

			fc := redis.NewFailoverClient(s.FailoverOptions())
			defer fc.Close()
			if err := fc.Set(ctx, "sentinel-key", "kept", 0).Err(); err != nil {
				t.Fatal(err)
			}
			// Replication is asynchronous: wait for both replicas to have
			// the key, or losing it would be no fault of the failover.
			if n, err := fc.Wait(ctx, 2, 2000).Result(); err != nil || n != 2 {
				t.Fatalf("WAIT 2: %d, %v", n, err)
			}

			old.Kill()
			killed := time.Now()
			promoted, err := s.WaitFailover(old, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("sentinels promoted %s in %v", promoted.Addr, time.Since(killed).Round(time.Millisecond))
			if !slices.Contains(s.Nodes[1:], promoted) {
				t.Errorf("new master %s was not a replica", promoted.Addr)
			}
			if got, err := s.Master(); err != nil || got != promoted {
				t.Errorf("Master() = %v, %v; want %s", addrOf(got), err, promoted.Addr)
			}
			if got, err := fc.Get(ctx, "sentinel-key").Result(); err != nil || got != "kept" {
				t.Errorf("GET after the failover: got %q, %v; want %q", got, err, "kept")
			}
		})
	}
}
