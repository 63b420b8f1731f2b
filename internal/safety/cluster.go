package safety

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// Node is one redis-server that a scenario can kill, restart on the same
// port and directory (so an append-only file survives), or pause.
type Node struct {
	Name string

	opts procs.RedisOptions
	dir  string

	mu  sync.Mutex
	srv *procs.Redis // nil while killed
}

// startNode runs a redis-server with its files in a directory of t's and
// kills it when t ends.
func startNode(t testing.TB, name string, args []string) *Node {
	t.Helper()
	redistest.Require(t)
	n := &Node{Name: name, opts: procs.RedisOptions{Args: args}, dir: t.TempDir()}
	srv, err := procs.StartRedis(n.dir, n.opts)
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
		n.srv.Kill()
		n.srv = nil
	}
}

// Restart starts the node again on its port and directory; it kills it
// first if it still runs.
func (n *Node) Restart() error {
	n.Kill()
	n.mu.Lock()
	defer n.mu.Unlock()
	srv, err := procs.StartRedis(n.dir, n.opts)
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
func (n *Node) Client() *redis.Client { return dial(n.Addr()) }

// LogTail returns the end of the node's redis.log, for failure reports.
func (n *Node) LogTail() string {
	return procs.Tail(filepath.Join(n.dir, "redis.log"), 30, "\n")
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

	mu   sync.Mutex
	port int          // 0 until the first start picks one
	p    *procs.Lockd // nil until the first start
}

// Start runs lockd, on the port of its previous run if it had one, and
// waits until it listens. Its output is appended to its log.
func (l *Lockd) Start() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	// No .env from the repository: every setting comes from env, and the
	// working directory is the log's.
	spec := procs.Spec{Name: l.Name, Path: l.bin, Env: l.env, Dir: filepath.Dir(l.logPath), LogFile: l.logPath}
	p, err := procs.StartLockd(spec, l.port)
	if err != nil {
		return fmt.Errorf("%w: %s", err, l.LogTail())
	}
	l.p, l.port = p, p.Port
	return nil
}

// URL is the base URL of the instance's HTTP API.
func (l *Lockd) URL() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return "http://127.0.0.1:" + strconv.Itoa(l.port)
}

// proc is the running (or last) process, nil before the first start.
func (l *Lockd) proc() *procs.Lockd {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.p
}

// Kill sends SIGKILL and waits for the exit.
func (l *Lockd) Kill() {
	if p := l.proc(); p != nil {
		p.Kill()
	}
}

// Stop asks for a graceful shutdown and kills the process if it takes
// longer than a few seconds.
func (l *Lockd) Stop() {
	if p := l.proc(); p != nil {
		p.Stop(10 * time.Second)
	}
}

// LogTail returns the end of the instance's log, for failure reports.
func (l *Lockd) LogTail() string { return procs.Tail(l.logPath, 40, "\n") }
