package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// proc is one child process, in its own process group so that the
// terminal's Ctrl-C reaches only lockbench, which stops it by its pid.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func startProc(name, logFile string, env []string, bin string, args ...string) (*proc, error) {
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and, when the process is still there after a few
// seconds (a lockd draining waiters), SIGKILL.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// cluster is what one scenario runs against: nodes redis-servers and two
// lockd replicas over them (quorum mode with more than one node), and the
// naive service on node 1 when asked for.
type cluster struct {
	redis    []*redistest.Server
	addrs    []string
	rdb      []*redis.Client  // the benchmark's own clients, one per node
	sent     *sentCounter     // round trips those clients made
	proxies  []*countingProxy // counted clusters: one in front of each node
	viaProxy *redis.Client    // counted clusters: a benchmark client through the first proxy
	lockd    []*proc
	urls     []string
	naive    *proc
	naiveURL string
	peerPIDs []int // set by a scenario while it runs a peer such as etcd
	dir      string
}

// clusterOptions say what startCluster starts.
type clusterOptions struct {
	nodes int      // redis-servers; more than one is quorum mode
	env   []string // extra lockd environment
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
	var serviceAddrs []string // what lockd and the naive service connect to
	for i := range o.nodes {
		rdir := filepath.Join(dir, fmt.Sprintf("redis-%d", i+1))
		if err := os.MkdirAll(rdir, 0o755); err != nil {
			return c, err
		}
		// redistest's server: a free loopback port, no persistence, ready
		// when it returns.
		srv, err := redistest.Run(rdir, redistest.Options{Args: []string{"--maxclients", "20000"}})
		if err != nil {
			return c, err
		}
		c.redis = append(c.redis, srv)
		addr := srv.Addr
		c.addrs = append(c.addrs, addr)
		// Enough connections for the widest in-process scenario (64
		// redsync competitors, plus their releases).
		c.rdb = append(c.rdb, redis.NewClient(&redis.Options{Addr: addr, PoolSize: 160, MaxRetries: -1}))
		c.rdb[i].AddHook(c.sent)
		if !o.counted {
			serviceAddrs = append(serviceAddrs, addr)
			continue
		}
		p, err := startProxy(addr)
		if err != nil {
			return c, err
		}
		c.proxies = append(c.proxies, p)
		serviceAddrs = append(serviceAddrs, p.addr())
	}
	if o.counted {
		c.viaProxy = redis.NewClient(&redis.Options{Addr: serviceAddrs[0], PoolSize: 160, MaxRetries: -1})
	}
	redisEnv := []string{"REDIS_ADDR=" + serviceAddrs[0], "REDIS_ADDRS=", "REDIS_URLS="}
	if o.nodes > 1 {
		redisEnv = []string{"REDIS_ADDR=", "REDIS_ADDRS=" + strings.Join(serviceAddrs, ","), "REDIS_URLS="}
	}
	for i := range 2 {
		port, err := redistest.FreePort()
		if err != nil {
			return c, err
		}
		env := append(os.Environ(), "PORT="+strconv.Itoa(port), "LOG_FORMAT=json",
			"REDIS_PASSWORD=", "REDIS_DB=0", "API_TOKENS=", "API_TOKENS_FILE=")
		env = append(append(env, redisEnv...), o.env...)
		p, err := startProc("lockd", filepath.Join(dir, fmt.Sprintf("lockd-%d.log", i+1)), env, lockdBin)
		if err != nil {
			return c, err
		}
		c.lockd = append(c.lockd, p)
		url := "http://127.0.0.1:" + strconv.Itoa(port)
		c.urls = append(c.urls, url)
		if err := waitFor(ctx, "lockd on "+url, func() error { return ready(ctx, url) }); err != nil {
			return c, err
		}
	}
	if o.naive != "" {
		if c.naive, c.naiveURL, err = startNaive(ctx, o.naive, dir, serviceAddrs[0]); err != nil {
			return c, err
		}
	}
	return c, nil
}

// startNaive runs the naive service (cmd/lockbench/naive) against the Redis
// at addr, in Gin's release mode as it would be deployed.
func startNaive(ctx context.Context, bin, dir, addr string) (*proc, string, error) {
	port, err := redistest.FreePort()
	if err != nil {
		return nil, "", err
	}
	env := append(os.Environ(), "REDIS_ADDR="+addr, "PORT="+strconv.Itoa(port), "GIN_MODE=release")
	p, err := startProc("naive", filepath.Join(dir, "naive.log"), env, bin)
	if err != nil {
		return nil, "", err
	}
	hostport := "127.0.0.1:" + strconv.Itoa(port)
	err = waitFor(ctx, "the naive service on "+hostport, func() error {
		conn, err := net.Dial("tcp", hostport)
		if err == nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		p.stop()
		return nil, "", err
	}
	return p, "http://" + hostport, nil
}

func ready(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz: %s", resp.Status)
	}
	return nil
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
		p.stop()
	}
	if c.naive != nil {
		c.naive.stop()
	}
	for _, r := range c.rdb {
		_ = r.Close()
	}
	if c.viaProxy != nil {
		_ = c.viaProxy.Close()
	}
	for _, p := range c.proxies {
		p.stop()
	}
	for _, srv := range c.redis {
		srv.Stop()
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

func (c *cluster) lockdPIDs() []int { return pids(c.lockd) }

// servicePIDs are the processes that serve locks: the lockd replicas, the
// naive service and any peer a scenario runs beside them (peerPIDs).
func (c *cluster) servicePIDs() []int {
	out := c.lockdPIDs()
	if c.naive != nil {
		out = append(out, c.naive.pid())
	}
	return append(out, c.peerPIDs...)
}
func (c *cluster) redisPIDs() []int {
	var out []int
	for _, srv := range c.redis {
		out = append(out, srv.Pid())
	}
	return out
}

func pids(ps []*proc) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.pid()
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

// commandCalls is the number of commands a Redis has run, from INFO
// commandstats, without the INFO calls that read it.
func commandCalls(ctx context.Context, rdbs ...*redis.Client) (int64, error) {
	var total int64
	for _, r := range rdbs {
		s, err := r.Info(ctx, "commandstats").Result()
		if err != nil {
			return 0, err
		}
		for line := range strings.SplitSeq(s, "\n") {
			name, rest, ok := strings.Cut(strings.TrimSpace(line), ":calls=")
			if !ok || name == "cmdstat_info" {
				continue
			}
			n, _, _ := strings.Cut(rest, ",")
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("commandstats %q: %w", line, err)
			}
			total += v
		}
	}
	return total, nil
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
