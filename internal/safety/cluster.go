package safety

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// Node is one redis-server that a scenario can kill, restart on the same
// port and directory (so an append-only file survives), or pause.
type Node struct {
	Name string

	opts redistest.Options
	dir  string

	mu  sync.Mutex
	srv *redistest.Server // nil while killed
}

// startNode runs a redis-server with its files in a directory of t's and
// kills it when t ends.
func startNode(t testing.TB, name string, args []string) *Node {
	t.Helper()
	redistest.Require(t)
	n := &Node{Name: name, opts: redistest.Options{Args: args}, dir: t.TempDir()}
	srv, err := redistest.Run(n.dir, n.opts)
	if err != nil {
		t.Fatal(err)
	}
	n.srv = srv
	// Later starts reuse the port, so the proxies in front keep working.
	n.opts.Port = srv.Port
	t.Cleanup(n.Kill)
	return n
}

// Addr is the node's own address, bypassing any proxy.
func (n *Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.opts.Port) }

// Kill sends SIGKILL and waits for the process to exit. Killing a killed
// node does nothing.
func (n *Node) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv != nil {
		n.srv.Stop()
		n.srv = nil
	}
}

// Restart starts the node again on its port and directory; it kills it
// first if it still runs.
func (n *Node) Restart() error {
	n.Kill()
	n.mu.Lock()
	defer n.mu.Unlock()
	srv, err := redistest.Run(n.dir, n.opts)
	if err != nil {
		return err
	}
	n.srv = srv
	return nil
}

// Signal sends sig (SIGSTOP, SIGCONT) to the running process.
func (n *Node) Signal(sig os.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.srv == nil {
		return fmt.Errorf("%s is not running", n.Name)
	}
	return n.srv.Signal(sig)
}

// Client opens a connection straight to the node; the caller closes it. It
// never retries, so a question to a dead node fails at once.
func (n *Node) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: n.Addr(), MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
}

// LogTail returns the end of the node's redis.log, for failure reports.
func (n *Node) LogTail() string {
	return tail(filepath.Join(n.dir, "redis.log"), 30)
}

// Proxies is the in-process toxiproxy: one proxy per (lockd instance, Redis
// node), so a fault can cut or slow one instance's link and not the other's.
type Proxies struct {
	server *toxiproxy.ApiServer
	byName map[string]*toxiproxy.Proxy
}

func newProxies() *Proxies {
	return &Proxies{
		server: toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()),
		byName: map[string]*toxiproxy.Proxy{},
	}
}

// Add starts a proxy on a free loopback port in front of upstream and
// returns the address to dial.
func (p *Proxies) Add(name, upstream string) (string, error) {
	px := toxiproxy.NewProxy(p.server, name, "127.0.0.1:0", upstream)
	if err := px.Start(); err != nil {
		return "", fmt.Errorf("proxy %s: %w", name, err)
	}
	p.byName[name] = px
	return px.Listen, nil
}

// Toxic adds a toxic to one proxy. attrs is the toxic's JSON attributes,
// such as {"latency":100}; stream is "upstream" or "downstream".
func (p *Proxies) Toxic(proxy, name, typ, stream, attrs string) error {
	px, ok := p.byName[proxy]
	if !ok {
		return fmt.Errorf("no proxy %s", proxy)
	}
	body := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)
	_, err := px.Toxics.AddToxicJson(strings.NewReader(body))
	return err
}

// Clear removes every toxic from every proxy.
func (p *Proxies) Clear() {
	for _, px := range p.byName {
		px.Toxics.ResetToxics(context.Background())
	}
}

// Close removes the toxics and stops every proxy, closing its connections.
func (p *Proxies) Close() {
	p.Clear()
	for _, px := range p.byName {
		px.Stop()
	}
}

// proxyName names the proxy between lockd instance i and node j.
func proxyName(i, j int) string { return fmt.Sprintf("lockd%d-redis%d", i, j) }

// Lockd is one lockd process. It runs in its own process group, so signals
// meant for the test never reach it, and it can be killed, paused and
// restarted on the same port.
type Lockd struct {
	Name    string
	bin     string
	env     []string
	logPath string
	port    int // 0 until the first start picks one

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs lockd and waits until it logs that it listens.
func (l *Lockd) Start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	logf, err := os.OpenFile(l.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	offset, err := logf.Seek(0, 2)
	if err != nil {
		return err
	}
	cmd := exec.Command(l.bin)
	cmd.Env = append(append([]string{}, l.env...), "PORT="+strconv.Itoa(l.port))
	// No .env from the repository: every setting comes from env above.
	cmd.Dir = filepath.Dir(l.logPath)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", l.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	l.cmd, l.done = cmd, done

	deadline := time.Now().Add(15 * time.Second)
	for {
		port, ok := listeningPort(l.logPath, offset)
		if ok {
			l.port = port
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited at start: %s", l.Name, tail(l.logPath, 10))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not log that it listens: %s", l.Name, tail(l.logPath, 10))
		}
	}
}

// listeningPort finds lockd's "lockd listening" JSON line after offset.
func listeningPort(path string, offset int64) (int, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "lockd listening" {
			continue
		}
		_, p, err := net.SplitHostPort(line.Addr)
		if err != nil {
			continue
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			continue
		}
		return port, true
	}
	return 0, false
}

// URL is the base URL of the instance's HTTP API.
func (l *Lockd) URL() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return "http://127.0.0.1:" + strconv.Itoa(l.port)
}

// Signal sends sig to the process (SIGKILL, SIGSTOP, SIGCONT).
func (l *Lockd) Signal(sig os.Signal) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cmd == nil {
		return errors.New(l.Name + " never started")
	}
	return l.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits for the exit.
func (l *Lockd) Kill() {
	_ = l.Signal(syscall.SIGCONT) // a paused process must run to die
	_ = l.Signal(syscall.SIGKILL)
	l.wait()
}

// Stop asks for a graceful shutdown and kills the process if it takes
// longer than a few seconds.
func (l *Lockd) Stop() {
	_ = l.Signal(syscall.SIGCONT)
	_ = l.Signal(syscall.SIGTERM)
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		l.Kill()
	}
}

func (l *Lockd) wait() {
	l.mu.Lock()
	done := l.done
	l.mu.Unlock()
	if done != nil {
		<-done
	}
}

// LogTail returns the end of the instance's log, for failure reports.
func (l *Lockd) LogTail() string { return tail(l.logPath, 40) }

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lockKeys lists the lock:* keys on a node. Other keys (fence counters,
// grant metadata) outlive the locks on purpose.
func lockKeys(ctx context.Context, n *Node) ([]string, error) {
	c := n.Client()
	defer c.Close()
	var keys []string
	iter := c.Scan(ctx, 0, "lock:*", 100).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	return keys, iter.Err()
}

// connectedClients reads connected_clients from INFO clients. The asking
// connection counts itself.
func connectedClients(ctx context.Context, n *Node) (int, error) {
	c := n.Client()
	defer c.Close()
	info, err := c.Info(ctx, "clients").Result()
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "connected_clients:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO clients has no connected_clients")
}
