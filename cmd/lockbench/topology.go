package main

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
)

// startSentinel starts a master with two replicas and three sentinels
// (procs.StartSentinel) and returns lockd's environment for it. On a
// counted cluster a proxy stands in front of the master, and the sentinels
// are made to monitor the proxy instead, so that the address they give
// lockd is the proxy's.
func (c *cluster) startSentinel(ctx context.Context, o clusterOptions) ([]string, error) {
	s, err := procs.StartSentinel(filepath.Join(c.dir, "sentinel"), procs.SentinelOptions{})
	if err != nil {
		return nil, err
	}
	c.sentinels = s
	master, err := s.Master()
	if err != nil {
		return nil, err
	}
	c.addTopology([]*procs.Redis{master}, slices.Concat(s.Nodes, s.Sentinels))
	if o.counted {
		p, err := startProxy(master.Addr)
		if err != nil {
			return nil, err
		}
		c.proxies = append(c.proxies, p)
		if err := monitor(ctx, s, p.addr()); err != nil {
			return nil, err
		}
	}
	return []string{"REDIS_SENTINEL_ADDRS=" + strings.Join(s.SentinelAddrs(), ","), "REDIS_MASTER_NAME=" + s.Name}, nil
}

// monitor makes every sentinel of s monitor the master at addr, under the
// same name, in place of the one it monitors. The sentinels' own pings then
// go through addr too: a counted cluster says how many (the idle rate).
func monitor(ctx context.Context, s *procs.SentinelSet, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	for _, r := range s.Sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: r.Addr})
		err := sc.Remove(ctx, s.Name).Err()
		if err == nil {
			err = sc.Monitor(ctx, s.Name, host, port, "2").Err()
		}
		_ = sc.Close()
		if err != nil {
			return fmt.Errorf("sentinel %s: monitor %s: %w", r.Addr, addr, err)
		}
	}
	return nil
}

// startShards starts a Redis Cluster (procs.StartCluster) of o.nodes
// masters, 3 when 0, with o.replicas replicas each, and returns lockd's
// environment for it. On a counted cluster a proxy stands in front of each
// master, and each master announces its proxy's port as its own
// (cluster-announce-port), so that CLUSTER SLOTS sends lockd to the
// proxies; such a cluster is started without replicas, which lockd never
// talks to.
func (c *cluster) startShards(ctx context.Context, o clusterOptions) ([]string, error) {
	if o.counted {
		o.replicas = -1
	}
	rc, err := procs.StartCluster(filepath.Join(c.dir, "shards"), procs.ClusterOptions{Masters: o.nodes, Replicas: o.replicas})
	if err != nil {
		return nil, err
	}
	c.shards = rc
	masters, err := rc.Masters()
	if err != nil {
		return nil, err
	}
	c.addTopology(masters, rc.Nodes)
	if !o.counted {
		c.slots = redis.NewClusterClient(rc.ClientOptions())
		return []string{"REDIS_CLUSTER_ADDRS=" + strings.Join(rc.Addrs(), ",")}, nil
	}
	var seeds []string
	for i, m := range masters {
		p, err := startProxy(m.Addr)
		if err != nil {
			return nil, err
		}
		c.proxies = append(c.proxies, p)
		seeds = append(seeds, p.addr())
		_, port, _ := net.SplitHostPort(p.addr())
		if err := c.rdb[i].ConfigSet(ctx, "cluster-announce-port", port).Err(); err != nil {
			return nil, fmt.Errorf("%s: announce the proxy: %w", m.Addr, err)
		}
	}
	// The masters learn each other's new ports by gossip.
	err = waitFor(ctx, "the cluster's proxies in CLUSTER SLOTS", func() error {
		for _, r := range c.rdb {
			ranges, err := r.ClusterSlots(ctx).Result()
			if err != nil {
				return err
			}
			for _, rng := range ranges {
				if len(rng.Nodes) == 0 || !slices.Contains(seeds, rng.Nodes[0].Addr) {
					return fmt.Errorf("%s gives slots %d-%d to %v, not to a proxy", r.Options().Addr, rng.Start, rng.End, rng.Nodes)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return []string{"REDIS_CLUSTER_ADDRS=" + strings.Join(seeds, ",")}, nil
}

// addTopology adds masters as the nodes lockd writes to, and the other
// processes of all as standby.
func (c *cluster) addTopology(masters, all []*procs.Redis) {
	for _, m := range masters {
		c.addNode(m)
	}
	for _, r := range all {
		if !slices.Contains(masters, r) {
			c.standby = append(c.standby, r)
		}
	}
}

// shardOf returns the index in c.redis of the master that serves the lock
// named name: the one go-redis sends its scripts to, found from the slot
// of its key. It is 0 for a cluster not in Redis Cluster mode.
func (c *cluster) shardOf(ctx context.Context, name string) (int, error) {
	if c.slots == nil {
		return 0, nil
	}
	m, err := c.slots.MasterForKey(ctx, lock.KeyPrefix+name)
	if err != nil {
		return 0, err
	}
	i := slices.Index(c.addrs, m.Options().Addr)
	if i < 0 {
		return 0, fmt.Errorf("%s: its master %s is none of %v", name, m.Options().Addr, c.addrs)
	}
	return i, nil
}

// slotRanges describes the slots each node of c.redis serves, such as
// "0-5460", in Redis Cluster mode; "all" for a single node.
func (c *cluster) slotRanges(ctx context.Context) ([]string, error) {
	out := make([]string, len(c.redis))
	if c.slots == nil {
		for i := range out {
			out[i] = "all"
		}
		return out, nil
	}
	ranges, err := c.rdb[0].ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	slices.SortFunc(ranges, func(a, b redis.ClusterSlot) int { return a.Start - b.Start })
	for _, rng := range ranges {
		if len(rng.Nodes) == 0 {
			continue
		}
		if i := slices.Index(c.addrs, rng.Nodes[0].Addr); i >= 0 {
			if out[i] != "" {
				out[i] += ", "
			}
			out[i] += strconv.Itoa(rng.Start) + "–" + strconv.Itoa(rng.End)
		}
	}
	return out, nil
}
