package safety

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// Mode is the Redis topology behind the lockd instances. A scenario names
// the one it needs; the harness starts it, points lockd at it and checks
// its servers after the run, and the faults that act on Redis find their
// target through it.
type Mode string

// The topologies.
const (
	// S1 is one Redis node (REDIS_ADDR), behind a proxy per lockd.
	S1 Mode = "S1"
	// R3 is three independent masters with a quorum of two (REDIS_ADDRS),
	// each behind a proxy per lockd.
	R3 Mode = "R3"
	// C3 is a Redis Cluster of three shards, each a master and two
	// replicas (REDIS_CLUSTER_ADDRS). Two replicas, as in SN: once one is
	// promoted, its shard still has a replica to acknowledge a WAIT. Only
	// the first may be promoted (oneCandidate).
	C3 Mode = "C3"
	// SN is a master, two replicas and three sentinels
	// (REDIS_SENTINEL_ADDRS).
	SN Mode = "SN"
)

// FailoverAfter is how long a master of C3 or SN may not answer before
// the failover starts: the cluster's cluster-node-timeout, the sentinels'
// down-after-milliseconds.
const FailoverAfter = time.Second

// failoverLimit bounds the wait for a failover to complete (about 2.5 s
// here).
const failoverLimit = 15 * time.Second

// startRedis starts sc's topology; everything stops in t.Cleanup.
func (h *Harness) startRedis(sc Scenario) {
	t := h.T
	switch sc.Mode {
	case S1, R3:
		n := 1
		if sc.Mode == R3 {
			n = 3
		}
		for j := range n {
			h.Nodes = append(h.Nodes, startNode(t, fmt.Sprintf("redis%d", j), sc.Redis))
		}
		return
	case C3, SN:
		// procs starts these without persistence, like noPersistence.
		if len(sc.Redis) > 0 {
			t.Fatalf("mode %s takes no extra redis-server arguments (got %q)", sc.Mode, sc.Redis)
		}
	}
	switch sc.Mode {
	case C3:
		h.Cluster = redistest.StartCluster(t, procs.ClusterOptions{Replicas: 2, NodeTimeout: FailoverAfter})
		if err := oneCandidate(h.Cluster); err != nil {
			t.Fatal(err)
		}
	case SN:
		h.Sentinel = redistest.StartSentinel(t, procs.SentinelOptions{DownAfter: FailoverAfter})
	default:
		t.Fatalf("unknown mode %q", sc.Mode)
	}
}

// oneCandidate leaves one replica of each master free to be promoted and
// sets cluster-replica-no-failover on the others. Two replicas of a master
// have the same replication offset, so the same rank, and now and then
// start their elections within a millisecond of each other: each gets one
// master's vote, and Redis tries again only after twice the node timeout
// (a failover of 7 s instead of 2, about one in thirty here), past any
// bound a scenario could set. The others still replicate, and follow the
// promoted one.
func oneCandidate(c *procs.Cluster) error {
	masters, err := c.Masters()
	if err != nil {
		return err
	}
	for _, m := range masters {
		replicas, err := c.ReplicasOf(m)
		if err != nil {
			return err
		}
		for _, r := range replicas[min(1, len(replicas)):] {
			rc := dial(r.Addr)
			err := rc.ConfigSet(context.Background(), "cluster-replica-no-failover", "yes").Err()
			_ = rc.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", r.Addr, err)
			}
		}
	}
	return nil
}

// redisEnv returns the Redis settings of lockd instance i. S1 and R3 nodes
// are reached through a proxy per (instance, node), made here; a cluster
// and sentinels announce the addresses of their nodes, so lockd dials
// those itself, and no toxic can be put between them.
func (h *Harness) redisEnv(i int, sc Scenario) []string {
	var env []string
	switch {
	case h.Cluster != nil:
		env = append(env, "REDIS_CLUSTER_ADDRS="+strings.Join(h.Cluster.Addrs(), ","))
	case h.Sentinel != nil:
		env = append(env, "REDIS_SENTINEL_ADDRS="+strings.Join(h.Sentinel.SentinelAddrs(), ","),
			"REDIS_MASTER_NAME="+h.Sentinel.Name)
	default:
		var addrs []string
		for j, node := range h.Nodes {
			addr, err := h.Proxies.Add(proxyName(i, j), node.Addr())
			if err != nil {
				h.T.Fatal(err)
			}
			addrs = append(addrs, addr)
		}
		if len(addrs) == 1 {
			env = append(env, "REDIS_ADDR="+addrs[0])
		} else {
			env = append(env, "REDIS_ADDRS="+strings.Join(addrs, ","))
		}
	}
	if sc.MinReplicas > 0 {
		env = append(env, "REDIS_MIN_REPLICAS="+strconv.Itoa(sc.MinReplicas))
	}
	return env
}

// server is a Redis process the harness checks after a run.
type server struct {
	name, addr string
	// data is set for a node that holds keys; a sentinel holds none.
	data bool
}

// servers lists the topology's servers: every S1 or R3 node (the faults
// restart the ones they kill), and the running nodes and sentinels of C3
// and SN (a killed master stays down).
func (h *Harness) servers() []server {
	var out []server
	for _, n := range h.Nodes {
		out = append(out, server{name: n.Name, addr: n.Addr(), data: true})
	}
	var nodes, sentinels []*procs.Redis
	switch {
	case h.Cluster != nil:
		nodes = h.Cluster.Nodes
	case h.Sentinel != nil:
		nodes, sentinels = h.Sentinel.Nodes, h.Sentinel.Sentinels
	}
	for _, r := range nodes {
		if running(r) {
			out = append(out, server{name: "node " + r.Addr, addr: r.Addr, data: true})
		}
	}
	for _, r := range sentinels {
		if running(r) {
			out = append(out, server{name: "sentinel " + r.Addr, addr: r.Addr})
		}
	}
	return out
}

// running reports whether r has not exited.
func running(r *procs.Redis) bool {
	select {
	case <-r.Done():
		return false
	default:
		return true
	}
}

// masterOf returns the master that serves the lock name now: the master
// of its slot in C3, the master in SN. S1 and R3 have no masters to fail
// over.
func (h *Harness) masterOf(name string) (*procs.Redis, error) {
	switch {
	case h.Cluster != nil:
		slot, err := h.keySlot("lock:" + name)
		if err != nil {
			return nil, err
		}
		return h.Cluster.MasterForSlot(slot)
	case h.Sentinel != nil:
		return h.Sentinel.Master()
	}
	return nil, errors.New("no failover in this topology: it has no replicas")
}

// keySlot asks a running cluster node for key's hash slot.
func (h *Harness) keySlot(key string) (int, error) {
	for _, r := range h.Cluster.Nodes {
		if running(r) {
			c := dial(r.Addr)
			defer c.Close()
			slot, err := c.ClusterKeySlot(context.Background(), key).Result()
			return int(slot), err
		}
	}
	return 0, errors.New("no cluster node is running")
}

// waitFailover waits until a replica has taken over from old, which the
// caller killed, and returns it.
func (h *Harness) waitFailover(old *procs.Redis) (*procs.Redis, error) {
	switch {
	case h.Cluster != nil:
		return h.Cluster.WaitFailover(old, failoverLimit)
	case h.Sentinel != nil:
		return h.Sentinel.WaitFailover(old, failoverLimit)
	}
	return nil, errors.New("no failover in this topology: it has no replicas")
}

// dial opens a connection to a Redis server; the caller closes it. It
// never retries, so a question to a dead server fails at once.
func dial(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
}

// lockKeys lists the lock:* keys on a node. Other keys (fence counters,
// grant metadata) outlive the locks on purpose.
func lockKeys(ctx context.Context, addr string) ([]string, error) {
	c := dial(addr)
	defer c.Close()
	var keys []string
	iter := c.Scan(ctx, 0, "lock:*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

// otherClients counts a server's client connections (CLIENT LIST) that
// the topology does not make itself: a replica's link to its master or
// the master's end of it, and the sentinels' links (named sentinel-*), are
// left out. The asking connection counts itself.
func otherClients(ctx context.Context, addr string) (int, error) {
	c := dial(addr)
	defer c.Close()
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		return 0, err
	}
	n := 0
	for line := range strings.SplitSeq(strings.TrimSpace(list), "\n") {
		var name, flags string
		for field := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(field, "name="); ok {
				name = v
			}
			if v, ok := strings.CutPrefix(field, "flags="); ok {
				flags = v
			}
		}
		if strings.ContainsAny(flags, "SM") || strings.HasPrefix(name, "sentinel-") {
			continue
		}
		n++
	}
	return n, nil
}

// waitReplicated returns once the master of every lock has a write
// acknowledged by sc.MinReplicas replicas, or after failoverLimit. With
// REDIS_MIN_REPLICAS a grant needs that acknowledgement, and a failover
// can leave a master without replicas for a while: Sentinel sometimes
// fails over twice, the second time to the replica it had just pointed at
// the first new master, which then stays unattached until the sentinels
// reconfigure it (about ten seconds seen). Refusing grants meanwhile is
// right, so the probes that follow wait for Redis to have settled: they
// measure lockd, not Sentinel.
func (h *Harness) waitReplicated(sc Scenario) {
	if sc.MinReplicas == 0 {
		return
	}
	deadline := time.Now().Add(failoverLimit)
	for {
		err := h.replicated(sc.MinReplicas)
		if err == nil {
			h.Mark("every master has its replicas")
			return
		}
		if time.Now().After(deadline) {
			h.Mark("still short of replicas: " + err.Error())
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// replicated returns nil when the master of every lock has a write
// acknowledged by n replicas (procs.Acked), each master asked once.
func (h *Harness) replicated(n int) error {
	asked := map[*procs.Redis]bool{}
	for _, lock := range allLocks() {
		m, err := h.masterOf(lock)
		if err != nil {
			return fmt.Errorf("%s: %w", lock, err)
		}
		if asked[m] {
			continue
		}
		asked[m] = true
		if err := procs.Acked(m, n); err != nil {
			return err
		}
	}
	return nil
}
