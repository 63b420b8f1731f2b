package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
)

// stopGrace is how long a lockd, the naive service or etcd has to stop
// after SIGTERM (a lockd draining waiters) before it is killed.
const stopGrace = 5 * time.Second

// cluster is what one scenario runs against: nodes redis-servers and two
// lockd replicas over them (quorum mode with more than one node), and the
// naive service on node 1 when asked for; or, in Sentinel or Redis Cluster
// mode, a whole topology (topology.go). internal/procs starts them all,
// each in its own process group so that the terminal's Ctrl-C reaches only
// lockbench, which stops them by pid.
type cluster struct {
	// redis are the nodes lockd writes to: the plain nodes, Sentinel's
	// master or the Redis Cluster's masters, one per shard.
	redis []*procs.Redis
	// standby are the other processes of a topology, replicas and
	// sentinels: their CPU is counted apart.
	standby  []*procs.Redis
	addrs    []string
	rdb      []*redis.Client  // the benchmark's own clients, one per node of redis
	sent     *sentCounter     // round trips those clients made
	proxies  []*countingProxy // counted clusters: one in front of each node
	viaProxy *redis.Client    // counted clusters: a benchmark client through the first proxy
	lockd    []*procs.Lockd
	urls     []string
	naive    *procs.Lockd // it takes PORT and listens as lockd does
	naiveURL string
	peerPIDs []int // set by a scenario while it runs a peer such as etcd
	dir      string

	sentinels *procs.SentinelSet // Sentinel mode
	shards    *procs.Cluster     // Redis Cluster mode
	// slots tells, in Redis Cluster mode, which node of redis serves a
	// lock name (shardOf).
	slots *redis.ClusterClient
}

// Redis modes other than plain nodes, for clusterOptions.mode.
const (
	modeSentinel = "sentinel"
	modeCluster  = "cluster"
)

// clusterOptions say what startCluster starts.
type clusterOptions struct {
	nodes int // redis-servers; more than one is quorum mode
	// mode, when set, starts a topology instead of nodes: modeSentinel
	// (a master, two replicas, three sentinels) or modeCluster (a Redis
	// Cluster of nodes masters, 3 when 0, with replicas each).
	mode     string
	replicas int      // modeCluster: replicas per master, as procs.ClusterOptions.Replicas
	env      []string // extra lockd environment
	// counted puts a countingProxy in front of every redis-server and
	// points lockd and the naive service at the proxies, so that their
	// round trips are counted from outside them. The benchmark's own
	// clients still connect directly, and timings are never taken on such
	// a cluster: the proxy is one more hop.
	counted bool
	naive   string // the naive service's binary, started on node 1; "" for none
}

func startCluster(ctx context.Context, lockdBin, dir string, o clusterOptions) (c *cluster, err error) {
	c = &cluster{dir: dir, sent: &sentCounter{}}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	var serviceAddrs, redisEnv []string
	switch o.mode {
	case modeSentinel:
		redisEnv, err = c.startSentinel(ctx, o)
	case modeCluster:
		redisEnv, err = c.startShards(ctx, o)
	default:
		serviceAddrs, err = c.startRedis(o)
		if err == nil {
			redisEnv = []string{"REDIS_ADDR=" + serviceAddrs[0]}
			if o.nodes > 1 {
				redisEnv = []string{"REDIS_ADDR=", "REDIS_ADDRS=" + strings.Join(serviceAddrs, ",")}
			}
		}
	}
	if err != nil {
		return c, err
	}
	for i := range 2 {
		// Every Redis variable lockd reads is set, empty where unused, so
		// that none comes in from lockbench's own environment.
		env := append(os.Environ(), "LOG_FORMAT=json", "REDIS_PASSWORD=", "REDIS_DB=0", "API_TOKENS=", "API_TOKENS_FILE=",
			"REDIS_ADDR=", "REDIS_ADDRS=", "REDIS_URLS=", "REDIS_CLUSTER_ADDRS=", "REDIS_SENTINEL_ADDRS=", "REDIS_MASTER_NAME=")
		// os/exec keeps the last of duplicate variables.
		env = append(append(env, redisEnv...), o.env...)
		p, err := procs.StartLockd(procs.Spec{Name: fmt.Sprintf("lockd-%d", i+1), Path: lockdBin, Env: env,
			LogFile: filepath.Join(dir, fmt.Sprintf("lockd-%d.log", i+1))}, 0)
		if err != nil {
			return c, err
		}
		c.lockd = append(c.lockd, p)
		c.urls = append(c.urls, p.URL)
		// Listening is not enough: the scenarios need Redis behind it.
		if err := waitFor(ctx, "lockd on "+p.URL, func() error { return ready(ctx, p.URL) }); err != nil {
			return c, err
		}
	}
	if o.naive != "" {
		// The naive service, in Gin's release mode as it would be deployed.
		env := append(os.Environ(), "REDIS_ADDR="+serviceAddrs[0], "GIN_MODE=release")
		if c.naive, err = procs.StartLockd(procs.Spec{Name: "naive", Path: o.naive, Env: env, LogFile: filepath.Join(dir, "naive.log")}, 0); err != nil {
			return c, err
		}
		c.naiveURL = c.naive.URL
	}
	return c, nil
}

// startRedis starts the cluster's redis-servers (a free loopback port
// each, nothing kept on disk, ready when it returns), the benchmark's
// clients to them and, on a counted cluster, the proxies. It returns the
// addresses lockd and the naive service are to connect to.
func (c *cluster) startRedis(o clusterOptions) ([]string, error) {
	var serviceAddrs []string
	for i := range o.nodes {
		rdir := filepath.Join(c.dir, fmt.Sprintf("redis-%d", i+1))
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return nil, err
		}
		srv, err := procs.StartRedis(rdir, procs.RedisOptions{Args: []string{"--maxclients", "20000"}})
		if err != nil {
			return nil, err
		}
		c.addNode(srv)
		if !o.counted {
			serviceAddrs = append(serviceAddrs, srv.Addr)
			continue
		}
		p, err := startProxy(srv.Addr)
		if err != nil {
			return nil, err
		}
		c.proxies = append(c.proxies, p)
		serviceAddrs = append(serviceAddrs, p.addr())
	}
	if o.counted {
		c.viaProxy = redis.NewClient(&redis.Options{Addr: serviceAddrs[0], PoolSize: 160, MaxRetries: -1})
	}
	return serviceAddrs, nil
}

// addNode adds srv to the nodes lockd writes to, with the benchmark's own
// client to it.
func (c *cluster) addNode(srv *procs.Redis) {
	c.redis = append(c.redis, srv)
	c.addrs = append(c.addrs, srv.Addr)
	// Enough connections for the widest in-process scenario (64 redsync
	// competitors, plus their releases).
	r := redis.NewClient(&redis.Options{Addr: srv.Addr, PoolSize: 160, MaxRetries: -1})
	r.AddHook(c.sent)
	c.rdb = append(c.rdb, r)
}

func ready(ctx context.Context, url string) error {
	status, _, err := readyz(ctx, url)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("readyz: %d", status)
	}
	return err
}

// nodeState is one Redis node in a /readyz?verbose answer.
type nodeState struct {
	Addr  string `json:"addr"`
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

// readyz asks the replica at url for /readyz?verbose (a caller on the same
// host is shown the nodes) and returns its status and nodes.
func readyz(ctx context.Context, url string) (int, []nodeState, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz?verbose", nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Nodes []nodeState `json:"nodes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("readyz: %d, %w", resp.StatusCode, err)
	}
	return resp.StatusCode, body.Nodes, nil
}

func waitFor(ctx context.Context, what string, try func() error) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := try()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not come up: %w", what, err)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// stop stops the replicas first, so that nothing they do on the way out
// meets a Redis that is already gone, then the redis-servers.
func (c *cluster) stop() {
	for _, p := range c.lockd {
		p.Stop(stopGrace)
	}
	if c.naive != nil {
		c.naive.Stop(stopGrace)
	}
	for _, r := range c.rdb {
		_ = r.Close()
	}
	if c.viaProxy != nil {
		_ = c.viaProxy.Close()
	}
	if c.slots != nil {
		_ = c.slots.Close()
	}
	for _, p := range c.proxies {
		p.stop()
	}
	// A topology's Kill stops its sentinels before its nodes, so that
	// none starts a failover on the way down.
	if c.sentinels != nil {
		c.sentinels.Kill()
	}
	if c.shards != nil {
		c.shards.Kill()
	}
	for _, srv := range c.redis {
		srv.Kill() // plain nodes: a topology's are gone already
	}
}

// proxyTrips is the round trips counted so far by the cluster's proxies;
// 0 on a cluster that is not counted.
func (c *cluster) proxyTrips() int64 {
	var n int64
	for _, p := range c.proxies {
		n += p.trips.Load()
	}
	return n
}

func (c *cluster) lockdPIDs() []int {
	out := make([]int, len(c.lockd))
	for i, p := range c.lockd {
		out[i] = p.Pid()
	}
	return out
}

// servicePIDs are the processes that serve locks: the lockd replicas, the
// naive service and any peer a scenario runs beside them (peerPIDs).
func (c *cluster) servicePIDs() []int {
	out := c.lockdPIDs()
	if c.naive != nil {
		out = append(out, c.naive.Pid())
	}
	return append(out, c.peerPIDs...)
}

func (c *cluster) redisPIDs() []int { return pids(c.redis) }

func pids(nodes []*procs.Redis) []int {
	var out []int
	for _, srv := range nodes {
		out = append(out, srv.Pid())
	}
	return out
}

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// cpuTime is the user plus system CPU time the processes used so far.
func cpuTime(pids ...int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		path := "/proc/self/stat"
		if pid != 0 {
			path = fmt.Sprintf("/proc/%d/stat", pid)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		// The command name in parentheses may hold spaces: count the
		// fields after its closing parenthesis (state is field 3).
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return 0, fmt.Errorf("%s: short line", path)
		}
		utime, err1 := strconv.ParseInt(f[11], 10, 64)
		stime, err2 := strconv.ParseInt(f[12], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		total += time.Duration(utime+stime) * clockTick
	}
	return total, nil
}

// rssBytes is the resident set size of pid, from VmRSS in /proc/PID/status.
func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// nodeStats reads each node's nodeStat.
func nodeStats(ctx context.Context, rdbs []*redis.Client) ([]nodeStat, error) {
	var out []nodeStat
	for _, r := range rdbs {
		s, err := readNodeStat(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// nodeStat is what one Redis says it has done so far: the calls of each
// command (INFO commandstats, which counts those inside scripts too),
// without the INFO calls that read it, and its CPU time (INFO cpu, user
// plus system).
type nodeStat struct {
	calls map[string]int64 // by command, such as "evalsha" or "cluster|slots"
	cpu   time.Duration
}

func readNodeStat(ctx context.Context, r *redis.Client) (nodeStat, error) {
	s := nodeStat{calls: map[string]int64{}}
	stats, err := r.Info(ctx, "commandstats").Result()
	if err != nil {
		return s, err
	}
	for line := range strings.SplitSeq(stats, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
		if !ok || name == "cmdstat_info" {
			continue
		}
		n, _, _ := strings.Cut(rest, ",")
		v, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return s, fmt.Errorf("commandstats %q: %w", line, err)
		}
		s.calls[strings.TrimPrefix(name, "cmdstat_")] = v
	}
	cpu, err := r.Info(ctx, "cpu").Result()
	if err != nil {
		return s, err
	}
	for line := range strings.SplitSeq(cpu, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k != "used_cpu_sys" && k != "used_cpu_user" {
			continue
		}
		sec, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return s, fmt.Errorf("INFO cpu %q: %w", line, err)
		}
		s.cpu += time.Duration(sec * float64(time.Second))
	}
	return s, nil
}

func (s nodeStat) total() int64 {
	var n int64
	for _, v := range s.calls {
		n += v
	}
	return n
}

// sum adds up the nodes' figures.
func sum(nodes []nodeStat) nodeStat {
	out := nodeStat{calls: map[string]int64{}}
	for _, s := range nodes {
		out.cpu += s.cpu
		for cmd, n := range s.calls {
			out.calls[cmd] += n
		}
	}
	return out
}

func (s nodeStat) sub(t nodeStat) nodeStat {
	d := nodeStat{calls: map[string]int64{}, cpu: s.cpu - t.cpu}
	for name, v := range s.calls {
		if v != t.calls[name] {
			d.calls[name] = v - t.calls[name]
		}
	}
	return d
}

// sentCounter is a go-redis hook that counts the round trips of the
// benchmark's in-process clients: a command or a pipeline is one, as for
// countingProxy.
type sentCounter struct{ n atomic.Int64 }

func (*sentCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (s *sentCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		// INFO is the benchmark reading its figures, not load.
		if cmd.Name() != "info" {
			s.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (s *sentCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		s.n.Add(1)
		return next(ctx, cmds)
	}
}

// infoField reads one numeric field of a Redis INFO section.
func infoField(ctx context.Context, r *redis.Client, section, field string) (int64, error) {
	s, err := r.Info(ctx, section).Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO %s has no %s", section, field)
}
