package procs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// TestClusterFailover starts the default cluster, checks that every node
// says it is whole, then kills the master of a key and checks that its
// replica takes over with the key.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := redistest.StartCluster(t, redistest.ClusterOptions{})
	t.Logf("cluster of %d nodes up in %v", len(c.Nodes), time.Since(start).Round(time.Millisecond))
	ctx := context.Background()

	if got, want := len(c.Nodes), 6; got != want {
		t.Fatalf("got %d nodes, want %d", got, want)
	}
	masters, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(masters), 3; got != want {
		t.Fatalf("got %d masters, want %d", got, want)
	}
	for _, r := range c.Nodes {
		info := ask(t, r, func(c *redis.Client) (string, error) { return c.ClusterInfo(ctx).Result() })
		for _, want := range []string{"cluster_state:ok", "cluster_slots_assigned:16384", "cluster_known_nodes:6", "cluster_size:3"} {
			if !strings.Contains(info, want+"\r\n") {
				t.Errorf("CLUSTER INFO on %s has no %s:\n%s", r.Addr, want, info)
			}
		}
	}

	cc := redis.NewClusterClient(c.ClientOptions())
	defer cc.Close()
	const key, value = "failover-key", "kept"
	slot := keySlot(t, c.Nodes[0], key)
	old, err := c.MasterForSlot(slot)
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Set(ctx, key, value, 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Replication is asynchronous: wait for the replica to have the key,
	// or losing it in the failover would be no fault of the failover.
	if n := ask(t, old, func(c *redis.Client) (int64, error) { return c.Wait(ctx, 1, 2000).Result() }); n != 1 {
		t.Fatalf("WAIT 1 on %s: %d replicas acknowledged", old.Addr, n)
	}

	old.Kill()
	killed := time.Now()
	promoted, err := c.WaitFailover(old, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("replica %s took over from %s in %v", promoted.Addr, old.Addr, time.Since(killed).Round(time.Millisecond))
	if slices.Contains(masters, promoted) {
		t.Errorf("new master %s was a master before", promoted.Addr)
	}
	if got, err := c.MasterForSlot(slot); err != nil || got != promoted {
		t.Errorf("MasterForSlot(%d) = %v, %v; want %s", slot, addrOf(got), err, promoted.Addr)
	}
	// A new client: the first one still has the dead master in its slot
	// map, and how soon it notices is go-redis's business.
	after := redis.NewClusterClient(c.ClientOptions())
	defer after.Close()
	if got, err := after.Get(ctx, key).Result(); err != nil || got != value {
		t.Errorf("GET %s after the failover: got %q, %v; want %q", key, got, err, value)
	}
	running, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(running), 3; got != want {
		t.Errorf("got %d running masters after the failover, want %d", got, want)
	}
}

// TestClusterReshard moves 100 slots between two masters of a cluster with
// a password, and checks that the keys in those slots, looked up by
// CLUSTER KEYSLOT, moved with them.
func TestClusterReshard(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, redistest.ClusterOptions{Password: "cluster-pw"})
	ctx := context.Background()

	noAuth(t, c.Nodes[0].Addr)

	masters, err := c.Masters()
	if err != nil {
		t.Fatal(err)
	}
	from, to := masters[0], masters[1]
	fromBefore, toBefore := ownSlots(t, from), ownSlots(t, to)

	// Enough keys that about 24 land in the 100 slots that move.
	keys := make([]string, 4000)
	for i := range keys {
		keys[i] = fmt.Sprintf("reshard-key-%d", i)
	}
	slots := keySlots(t, from, keys)
	cc := redis.NewClusterClient(c.ClientOptions())
	defer cc.Close()
	if _, err := cc.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.Set(ctx, k, k, 0)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := c.Reshard(from, to, 100); err != nil {
		t.Fatal(err)
	}
	t.Logf("100 slots moved from %s to %s in %v", from.Addr, to.Addr, time.Since(start).Round(time.Millisecond))

	fromAfter, toAfter := ownSlots(t, from), ownSlots(t, to)
	var moved []int
	for s := range toAfter {
		if !toBefore[s] {
			moved = append(moved, s)
			if !fromBefore[s] || fromAfter[s] {
				t.Errorf("slot %d: was %s's %v, is still %v; want moved from it", s, from.Addr, fromBefore[s], fromAfter[s])
			}
		}
	}
	if got, want := len(moved), 100; got != want {
		t.Fatalf("%s gained %d slots, want %d", to.Addr, got, want)
	}

	direct := func(r *procs.Redis) *redis.Client {
		o := r.ClientOptions(0)
		o.MaxRetries = -1
		return redis.NewClient(o)
	}
	toClient, fromClient := direct(to), direct(from)
	defer toClient.Close()
	defer fromClient.Close()
	checked := 0
	for i, k := range keys {
		s := slots[i]
		if !slices.Contains(moved, s) {
			continue
		}
		checked++
		if got, err := c.MasterForSlot(s); err != nil || got != to {
			t.Errorf("MasterForSlot(%d) for %s = %v, %v; want %s", s, k, addrOf(got), err, to.Addr)
		}
		if got, err := toClient.Get(ctx, k).Result(); err != nil || got != k {
			t.Errorf("GET %s on %s: got %q, %v; want the value moved with its slot", k, to.Addr, got, err)
		}
		if err := fromClient.Get(ctx, k).Err(); err == nil || !strings.Contains(err.Error(), "MOVED "+fmt.Sprint(s)+" "+to.Addr) {
			t.Errorf("GET %s on %s: got %v, want MOVED to %s", k, from.Addr, err, to.Addr)
		}
	}
	if checked == 0 {
		t.Fatal("no key landed in the moved slots")
	}
	for i, k := range keys {
		if s := slots[i]; fromAfter[s] {
			if got, err := c.MasterForSlot(s); err != nil || got != from {
				t.Errorf("MasterForSlot(%d) for %s, a slot that stayed = %v, %v; want %s", s, k, addrOf(got), err, from.Addr)
			}
			break
		}
	}
}

// ownSlots returns the slots r says it serves, from its own CLUSTER SLOTS.
func ownSlots(t *testing.T, r *procs.Redis) map[int]bool {
	t.Helper()
	ranges := ask(t, r, func(c *redis.Client) ([]redis.ClusterSlot, error) {
		return c.ClusterSlots(context.Background()).Result()
	})
	own := map[int]bool{}
	for _, rng := range ranges {
		if len(rng.Nodes) > 0 && rng.Nodes[0].Addr == r.Addr {
			for s := rng.Start; s <= rng.End; s++ {
				own[s] = true
			}
		}
	}
	return own
}

func keySlot(t *testing.T, r *procs.Redis, key string) int {
	t.Helper()
	return keySlots(t, r, []string{key})[0]
}

// keySlots asks r for each key's slot, with CLUSTER KEYSLOT, in one round
// trip.
func keySlots(t *testing.T, r *procs.Redis, keys []string) []int {
	t.Helper()
	cmds := ask(t, r, func(c *redis.Client) ([]redis.Cmder, error) {
		return c.Pipelined(context.Background(), func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.ClusterKeySlot(context.Background(), k)
			}
			return nil
		})
	})
	slots := make([]int, len(cmds))
	for i, cmd := range cmds {
		slots[i] = int(cmd.(*redis.IntCmd).Val())
	}
	return slots
}

// ask runs q on a client of r and fails t on an error.
func ask[T any](t *testing.T, r *procs.Redis, q func(*redis.Client) (T, error)) T {
	t.Helper()
	c := redis.NewClient(r.ClientOptions(0))
	defer c.Close()
	v, err := q(c)
	if err != nil {
		t.Fatalf("%s: %v", r.Addr, err)
	}
	return v
}

func addrOf(r *procs.Redis) string {
	if r == nil {
		return "<nil>"
	}
	return r.Addr
}

// noAuth checks that the server at addr refuses a client without its
// password.
func noAuth(t *testing.T, addr string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING %s without the password: got %v, want NOAUTH", addr, err)
	}
}
