package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
)

// startCluster starts a Redis Cluster of 3 masters with a replica each,
// the topology of docker-compose.cluster.yml, with the .env password, on
// free ports; each node logs to a file of its own. It returns what it
// started with any error, for the caller to stop (StartCluster has killed
// its nodes then).
func (d demo) startCluster(out *prefixer) (*redisSet, error) {
	dir, err := os.MkdirTemp("", "lockdemo-cluster")
	if err != nil {
		return nil, err
	}
	rs := &redisSet{dirs: []string{dir}}
	c, err := procs.StartCluster(dir, procs.ClusterOptions{Password: d.password})
	if err != nil {
		return rs, err
	}
	rs.nodes, rs.outlivesNode = c.Nodes, true
	masters, err := c.Masters()
	if err != nil {
		return rs, err
	}
	for i, r := range c.Nodes {
		role := "replica"
		if slices.Contains(masters, r) {
			role = "master"
		}
		rs.names = append(rs.names, nodeName("redis", i))
		out.line(rs.names[i], fmt.Sprintf("started (pid %d) on %s, %s", r.Pid(), r.Addr, role))
	}
	rs.env = []string{"REDIS_CLUSTER_ADDRS=" + strings.Join(c.Addrs(), ",")}
	rs.where = fmt.Sprintf("redis cluster, masters %s with a replica each (db 0)", strings.Join(addrsOf(masters), ","))
	for _, m := range masters {
		rs.watch = append(rs.watch, m.Port)
	}
	rs.logs = filepath.Join(dir, "node-*", "redis.log")
	return rs, nil
}

// startSentinel starts a master, two replicas and three sentinels watching
// it, the topology of docker-compose.sentinel.yml, with the .env password
// for the data nodes and the sentinels alike, on free ports; each logs to a
// file of its own. It returns what it started with any error, for the
// caller to stop (StartSentinel has killed its processes then).
func (d demo) startSentinel(out *prefixer) (*redisSet, error) {
	dir, err := os.MkdirTemp("", "lockdemo-sentinel")
	if err != nil {
		return nil, err
	}
	rs := &redisSet{dirs: []string{dir}}
	s, err := procs.StartSentinel(dir, procs.SentinelOptions{Password: d.password, SentinelPassword: d.password})
	if err != nil {
		return rs, err
	}
	// The sentinels stop first, so that none starts a failover on the way
	// down.
	rs.nodes, rs.outlivesNode = append(slices.Clone(s.Sentinels), s.Nodes...), true
	for i := range s.Sentinels {
		rs.names = append(rs.names, fmt.Sprintf("sentinel-%d", i+1))
	}
	for i, r := range s.Nodes {
		role := "replica"
		if i == 0 {
			role = "master"
		}
		rs.names = append(rs.names, nodeName("redis", i))
		out.line(nodeName("redis", i), fmt.Sprintf("started (pid %d) on %s, %s", r.Pid(), r.Addr, role))
	}
	for i, r := range s.Sentinels {
		out.line(rs.names[i], fmt.Sprintf("started (pid %d) on %s", r.Pid(), r.Addr))
	}
	rs.env = []string{"REDIS_SENTINEL_ADDRS=" + strings.Join(s.SentinelAddrs(), ","),
		"REDIS_MASTER_NAME=" + s.Name, "REDIS_SENTINEL_PASSWORD=" + d.password}
	rs.where = fmt.Sprintf("redis master %s with replicas %s, sentinels %s watching it as %s (db %s)",
		s.Nodes[0].Addr, strings.Join(addrsOf(s.Nodes[1:]), ","), strings.Join(s.SentinelAddrs(), ","), s.Name, d.db)
	rs.watch = []int{s.Nodes[0].Port}
	rs.logs = filepath.Join(dir, "*", "redis.log")
	return rs, nil
}

// nodeName names the i-th node as compose names its services: redis,
// redis-2, redis-3, ...
func nodeName(base string, i int) string {
	if i == 0 {
		return base
	}
	return fmt.Sprintf("%s-%d", base, i+1)
}

func addrsOf(nodes []*procs.Redis) []string {
	out := make([]string, len(nodes))
	for i, r := range nodes {
		out[i] = r.Addr
	}
	return out
}
