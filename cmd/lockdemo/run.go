package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/joho/godotenv"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
)

const redisHint = "redis-server not found on PATH: install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)"

// stopGrace is how long a process has to stop after SIGTERM: a replica's
// shutdown allowance.
const stopGrace = 20 * time.Second

// demo is what the flags and the environment ask for.
type demo struct {
	lockd      string
	mode       string   // -redis-mode: single, cluster or sentinel
	redisPorts []int    // single mode: one per node, from -redis-port on
	webPorts   []string // the two replicas'
	password   string   // REDIS_PASSWORD, as compose has it
	db         string   // REDIS_DB
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	d, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	if err := d.preflight(); err != nil {
		return err
	}
	if d.password, d.db, err = credentials(getenv); err != nil {
		return err
	}
	if d.mode == "cluster" {
		d.db = "0" // a cluster has only database 0, and lockd refuses any other
	}

	out := &prefixer{w: stdout}
	var rs *redisSet
	switch d.mode {
	case "cluster":
		rs, err = d.startCluster(out)
	case "sentinel":
		rs, err = d.startSentinel(out)
	default:
		rs, err = d.startRedis(out)
	}
	defer rs.stop()
	if err != nil {
		return err
	}
	webs, err := d.startReplicas(out, rs.env)
	defer func() {
		// Replicas first, so they release their demo locks while Redis is
		// up; side by side, so their shutdowns overlap.
		for _, w := range webs {
			_ = w.Signal(syscall.SIGTERM)
		}
		for _, w := range webs {
			w.WaitOrKill(stopGrace)
		}
	}()
	if err != nil {
		return err
	}
	d.announce(out, rs)
	return waitForEnd(ctx, out, rs, webs)
}

// redisSet is the demo's Redis, in any mode: its processes and what the
// replicas and the banner need to know of them.
type redisSet struct {
	nodes []*procs.Redis // every redis-server, in the order they stop
	names []string       // theirs, as compose names its services
	// outlivesNode is set when the demo goes on after a Redis process
	// exits: quorum mode needs only a majority of its nodes, and a cluster
	// or Sentinel set promotes a replica.
	outlivesNode bool
	dirs         []string // their files, removed once they have stopped
	env          []string // the Redis variables of web-1 and web-2
	where        string   // for the banner: what runs where
	watch        []int    // for the banner: the ports whose MONITOR shows the locks, the masters
	logs         string   // for the banner: where the logs are, when not in the output
}

// stop stops the processes in order, with SIGTERM as Ctrl-C would, and
// removes their files. A nil set has nothing to stop.
func (rs *redisSet) stop() {
	if rs == nil {
		return
	}
	for _, r := range rs.nodes {
		r.Stop(stopGrace)
	}
	for _, dir := range rs.dirs {
		_ = os.RemoveAll(dir)
	}
}

func parseFlags(args []string, stdout io.Writer) (demo, error) {
	fs := flag.NewFlagSet("lockdemo", flag.ContinueOnError)
	fs.SetOutput(stdout)
	lockd := fs.String("lockd", "bin/lockd", "path to the lockd binary")
	redisPort := fs.Int("redis-port", 6380, "port of the demo's redis-server (6379 is left to any Redis you already run)")
	webPorts := fs.String("web-ports", "8081,8082", "ports of the two lockd replicas")
	nodes := fs.Int("redis-nodes", 1, "independent redis-server masters, on -redis-port and the ports after it; 3 runs quorum mode (Redlock)")
	mode := fs.String("redis-mode", "single", "single: -redis-nodes redis-server masters; cluster: a Redis Cluster of 3 masters and 3 replicas; "+
		"sentinel: a master, 2 replicas and 3 sentinels (cluster and sentinel take free ports, not -redis-port)")
	if err := fs.Parse(args); err != nil {
		return demo{}, err
	}
	if *nodes < 1 || *nodes > 9 {
		return demo{}, fmt.Errorf("-redis-nodes wants 1 to 9, got %d", *nodes)
	}
	switch *mode {
	case "single":
	case "cluster", "sentinel":
		if *nodes > 1 {
			return demo{}, fmt.Errorf("-redis-nodes %d (quorum mode) cannot be combined with -redis-mode %s: choose one", *nodes, *mode)
		}
	default:
		return demo{}, fmt.Errorf("-redis-mode wants single, cluster or sentinel, got %q", *mode)
	}
	d := demo{lockd: *lockd, mode: *mode, webPorts: strings.Split(*webPorts, ",")}
	for i := range *nodes {
		d.redisPorts = append(d.redisPorts, *redisPort+i)
	}
	if len(d.webPorts) != 2 {
		return demo{}, fmt.Errorf("-web-ports wants two ports, got %q", *webPorts)
	}
	return d, nil
}

// preflight checks, before anything starts, what would otherwise fail
// half-way: the binaries and the ports.
func (d demo) preflight() error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return errors.New(redisHint)
	}
	if _, err := os.Stat(d.lockd); err != nil {
		return fmt.Errorf("lockd binary: %w (build it with: make build)", err)
	}
	ports := d.webPorts
	if d.mode == "single" {
		ports = append(itoaAll(d.redisPorts), ports...)
	}
	for _, p := range ports {
		if err := portFree(p); err != nil {
			return err
		}
	}
	return nil
}

// credentials are compose's: .env first, the real environment wins.
func credentials(getenv func(string) string) (password, db string, err error) {
	dotenv, err := godotenv.Read()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", "", fmt.Errorf(".env: %w", err)
	}
	setting := func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return dotenv[k]
	}
	return setting("REDIS_PASSWORD"), setting("REDIS_DB"), nil
}

// startRedis starts one redis-server per node, each with its files in a
// temporary directory and its log in the demo's output. It returns the
// nodes started so far with any error, for the caller to stop.
func (d demo) startRedis(out *prefixer) (*redisSet, error) {
	rs := &redisSet{}
	var addrs []string
	for i, port := range d.redisPorts {
		dir, err := os.MkdirTemp("", "lockdemo-redis")
		if err != nil {
			return rs, err
		}
		rs.dirs = append(rs.dirs, dir)
		r, err := procs.StartRedis(dir, procs.RedisOptions{Port: port, Password: d.password,
			Args: []string{"--loglevel", "warning"}, Output: out.writer(nodeName("redis", i))})
		if err != nil {
			return rs, err
		}
		out.line(nodeName("redis", i), fmt.Sprintf("started (pid %d)", r.Pid()))
		rs.nodes = append(rs.nodes, r)
		rs.names = append(rs.names, nodeName("redis", i))
		addrs = append(addrs, r.Addr)
	}
	// One node: REDIS_ADDR, as compose sets it. Several: quorum mode.
	rs.env = []string{"REDIS_ADDR=" + addrs[0]}
	if len(addrs) > 1 {
		rs.env, rs.outlivesNode = []string{"REDIS_ADDRS=" + strings.Join(addrs, ",")}, true
	}
	rs.where = fmt.Sprintf("redis on %s (db %s)", strings.Join(addrs, ","), d.db)
	rs.watch = d.redisPorts[:1]
	return rs, nil
}

// startReplicas starts web-1 and web-2 over Redis, whose variables are
// redisEnv, as compose does. It returns the replicas started so far with
// any error.
func (d demo) startReplicas(out *prefixer, redisEnv []string) ([]*procs.Lockd, error) {
	var webs []*procs.Lockd
	for i, port := range d.webPorts {
		name := fmt.Sprintf("web-%d", i+1)
		p, err := strconv.Atoi(port)
		if err != nil {
			return webs, fmt.Errorf("-web-ports: %q is not a port", port)
		}
		// Every way to reach Redis is cleared first, so that only the
		// demo's own reaches lockd; each replica's dashboard knows the
		// other one, as in compose.
		env := append(os.Environ(), "REDIS_PASSWORD="+d.password, "REDIS_DB="+d.db,
			"REDIS_ADDR=", "REDIS_ADDRS=", "REDIS_URLS=", "REDIS_CLUSTER_ADDRS=", "REDIS_SENTINEL_ADDRS=",
			"REDIS_MASTER_NAME=", "REDIS_SENTINEL_USERNAME=", "REDIS_SENTINEL_PASSWORD=",
			"REPLICA_NAME="+name, "UI_PEERS=http://localhost:"+d.webPorts[1-i])
		env = append(env, redisEnv...)
		w, err := procs.StartLockd(procs.Spec{Name: name, Path: d.lockd, Env: env, Stdout: out.writer(name), Stderr: out.writer(name)}, p)
		if err != nil {
			return webs, err
		}
		out.line(name, fmt.Sprintf("started (pid %d)", w.Pid()))
		webs = append(webs, w)
	}
	return webs, nil
}

// announce says what runs where and how to try it.
func (d demo) announce(out *prefixer, rs *redisSet) {
	out.line("demo", fmt.Sprintf("ready: %s, web-1 on :%s, web-2 on :%s", rs.where, d.webPorts[0], d.webPorts[1]))
	out.line("demo", fmt.Sprintf("try:   curl --location 'http://localhost:%s/lock?resource_id=my-test-key'", d.webPorts[0]))
	watch := fmt.Sprintf("watch: REDISCLI_AUTH=%s redis-cli -p %d monitor", d.password, rs.watch[0])
	if others := rs.watch[1:]; len(others) > 0 {
		watch += fmt.Sprintf(" (a lock is on its slot's master: this one, or -p %s)", strings.Join(itoaAll(others), ", -p "))
	}
	out.line("demo", watch)
	if rs.logs != "" {
		out.line("demo", "redis logs: "+rs.logs)
	}
	out.line("demo", "Ctrl-C stops everything")
}

// waitForEnd returns nil on Ctrl-C, and an error when a process exits
// before that; but where Redis outlives one of its processes (quorum,
// cluster and Sentinel), that exit is only said, and the demo goes on.
func waitForEnd(ctx context.Context, out *prefixer, rs *redisSet, webs []*procs.Lockd) error {
	var ps []*procs.Proc
	for _, r := range rs.nodes {
		ps = append(ps, r.Proc)
	}
	redisExited := anyDone(ps)
	if rs.outlivesNode {
		redisExited = nil // never ready
		ctx, cancel := context.WithCancel(ctx)
		defer cancel() // not said of the processes the demo stops
		for i, r := range rs.nodes {
			go func() {
				select {
				case <-r.Done():
					out.line(rs.names[i], "exited")
				case <-ctx.Done():
				}
			}()
		}
	}
	select {
	case <-ctx.Done():
		out.line("demo", "stopping")
		return nil
	case <-redisExited:
		return errors.New("a redis-server exited")
	case <-webs[0].Done():
		return errors.New("web-1 exited")
	case <-webs[1].Done():
		return errors.New("web-2 exited")
	}
}

func portFree(port string) error {
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		return fmt.Errorf("port %s is taken (%v): stop what uses it or choose other ports with -redis-port / -web-ports", port, err)
	}
	return l.Close()
}

func itoaAll(ports []int) []string {
	out := make([]string, len(ports))
	for i, p := range ports {
		out[i] = strconv.Itoa(p)
	}
	return out
}

// prefixer writes whole lines, each behind its source's name.
type prefixer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *prefixer) line(name, s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s | %s\n", name, s)
}

// writer returns what a process's output goes through: each whole line is
// written behind name. A process's stdout and stderr get separate writers,
// so a line of one never splits a line of the other.
func (p *prefixer) writer(name string) io.Writer { return &lineWriter{p: p, name: name} }

type lineWriter struct {
	p    *prefixer
	name string
	buf  []byte // a line's start, until its newline comes
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.p.line(w.name, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

// anyDone is closed when the first of procs exits.
func anyDone(ps []*procs.Proc) <-chan struct{} {
	c := make(chan struct{})
	var once sync.Once
	for _, p := range ps {
		go func() {
			<-p.Done()
			once.Do(func() { close(c) })
		}()
	}
	return c
}
