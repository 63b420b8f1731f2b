package main

import (
	"bufio"
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
	"github.com/redis/go-redis/v9"
)

const redisHint = "redis-server not found on PATH: install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)"

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("lockdemo", flag.ContinueOnError)
	fs.SetOutput(stdout)
	lockd := fs.String("lockd", "bin/lockd", "path to the lockd binary")
	redisPort := fs.Int("redis-port", 6380, "port of the demo's redis-server (6379 is left to any Redis you already run)")
	webPorts := fs.String("web-ports", "8081,8082", "ports of the two lockd replicas")
	nodes := fs.Int("redis-nodes", 1, "independent redis-server masters, on -redis-port and the ports after it; 3 runs quorum mode (Redlock)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 9 {
		return fmt.Errorf("-redis-nodes wants 1 to 9, got %d", *nodes)
	}
	redisPorts := make([]string, *nodes)
	for i := range redisPorts {
		redisPorts[i] = strconv.Itoa(*redisPort + i)
	}
	ports := strings.Split(*webPorts, ",")
	if len(ports) != 2 {
		return fmt.Errorf("-web-ports wants two ports, got %q", *webPorts)
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return errors.New(redisHint)
	}
	if _, err := os.Stat(*lockd); err != nil {
		return fmt.Errorf("lockd binary: %w (build it with: make build)", err)
	}
	for _, p := range append(redisPorts, ports...) {
		if err := portFree(p); err != nil {
			return err
		}
	}

	// The same credentials as compose: .env first, the real environment wins.
	dotenv, err := godotenv.Read()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf(".env: %w", err)
	}
	setting := func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return dotenv[k]
	}
	password, db := setting("REDIS_PASSWORD"), setting("REDIS_DB")

	out := &prefixer{w: stdout}
	var redisProcs []*proc
	var addrs []string
	defer func() {
		for _, r := range redisProcs {
			r.stop()
		}
	}()
	for i, port := range redisPorts {
		dir, err := os.MkdirTemp("", "lockdemo-redis")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		rargs := []string{"--port", port, "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--loglevel", "warning"}
		if password != "" {
			rargs = append(rargs, "--requirepass", password)
		}
		name := "redis"
		if i > 0 {
			name = fmt.Sprintf("redis-%d", i+1)
		}
		r, err := start(out, name, nil, "redis-server", rargs...)
		if err != nil {
			return err
		}
		redisProcs = append(redisProcs, r)
		addrs = append(addrs, "127.0.0.1:"+port)
		if err := waitRedis(ctx, addrs[i], password); err != nil {
			return err
		}
	}
	// One node: REDIS_ADDR, as compose sets it. Several: quorum mode.
	redisEnv := []string{"REDIS_ADDR=" + addrs[0], "REDIS_ADDRS="}
	if len(addrs) > 1 {
		redisEnv = []string{"REDIS_ADDR=", "REDIS_ADDRS=" + strings.Join(addrs, ",")}
	}

	var webs []*proc
	defer func() {
		// Replicas first, so they release their demo locks while Redis is up.
		for _, w := range webs {
			w.signal(syscall.SIGTERM)
		}
		for _, w := range webs {
			w.wait()
		}
	}()
	for i, port := range ports {
		// Each replica's dashboard knows the other one, as in compose.
		peer := "http://localhost:" + ports[1-i]
		env := append(os.Environ(), "PORT="+port, "REDIS_PASSWORD="+password, "REDIS_DB="+db, "REDIS_URLS=",
			fmt.Sprintf("REPLICA_NAME=web-%d", i+1), "UI_PEERS="+peer)
		env = append(env, redisEnv...)
		w, err := start(out, fmt.Sprintf("web-%d", i+1), env, *lockd)
		if err != nil {
			return err
		}
		webs = append(webs, w)
	}

	for _, port := range ports {
		if err := waitHTTP(ctx, port); err != nil {
			return err
		}
	}
	out.line("demo", fmt.Sprintf("ready: redis on %s (db %s), web-1 on :%s, web-2 on :%s", strings.Join(addrs, ","), db, ports[0], ports[1]))
	out.line("demo", fmt.Sprintf("try:   curl --location 'http://localhost:%s/lock?resource_id=my-test-key'", ports[0]))
	out.line("demo", fmt.Sprintf("watch: REDISCLI_AUTH=%s redis-cli -p %d monitor", password, *redisPort))
	out.line("demo", "Ctrl-C stops everything")

	select {
	case <-ctx.Done():
		out.line("demo", "stopping")
		return nil
	case <-anyDone(redisProcs):
		return errors.New("a redis-server exited")
	case <-webs[0].done:
		return errors.New("web-1 exited")
	case <-webs[1].done:
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

func waitRedis(ctx context.Context, addr, password string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, Password: password, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitHTTP(ctx context.Context, port string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			return conn.Close()
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("lockd on port %s did not start: %w", port, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proc is one child process. Each runs in its own process group, so the
// terminal's Ctrl-C reaches only lockdemo, which then stops them in order.
type proc struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{}
	copied sync.WaitGroup
}

func start(out *prefixer, name string, env []string, bin string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	for _, r := range []io.Reader{stdout, stderr} {
		p.copied.Add(1)
		go func() {
			defer p.copied.Done()
			out.copy(name, r)
		}()
	}
	go func() {
		p.copied.Wait() // Wait closes the pipes: read them to the end first
		_ = cmd.Wait()
		close(p.done)
	}()
	out.line(name, fmt.Sprintf("started (pid %d)", cmd.Process.Pid))
	return p, nil
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// wait waits for the process to exit, killing it if it takes longer than a
// replica's shutdown allowance.
func (p *proc) wait() {
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) stop() {
	p.signal(syscall.SIGTERM)
	p.wait()
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

func (p *prefixer) copy(name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		p.line(name, sc.Text())
	}
}

// anyDone is closed when the first of procs exits.
func anyDone(procs []*proc) <-chan struct{} {
	c := make(chan struct{})
	var once sync.Once
	for _, p := range procs {
		go func() {
			<-p.done
			once.Do(func() { close(c) })
		}()
	}
	return c
}
