// Package redistest starts real redis-server processes for tests: each on a
// free loopback port, with its files in a temporary directory, stopped by
// process id when the test ends. Tests never touch a Redis they did not start.
//
// The servers themselves are started by internal/procs, which lockdemo,
// lockbench and the safety harness use too; this package ties them to a
// test. A server can serve TLS only, with a CA generated in its directory,
// and can have ACL users besides the default one (lock.LockdACL is the rule
// lockd needs). StartCluster and StartSentinel start whole topologies: a
// Redis Cluster, and a master with replicas watched by sentinels.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
)

// InstallHint says how to get the binary these helpers need.
const InstallHint = procs.InstallHint

// Options configure a server: procs.RedisOptions. The zero value is a
// password-less server on a free port.
type Options = procs.RedisOptions

// Server is one running redis-server process, started by internal/procs;
// this package adds what tests need on top (Stop for t.Cleanup, Client,
// Monitor, ACLRefusals).
type Server struct {
	*procs.Redis
}

// Start runs a redis-server for t and stops it in t.Cleanup. Without the
// binary it fails when CI is set (a missing dependency must not pass
// silently there) and skips, loudly, elsewhere.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	Require(t)
	s, err := Run(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Require fails or skips t, as Start does, when redis-server is missing.
func Require(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not found on PATH; %s", InstallHint)
		}
		t.Skipf("SKIPPED: redis-server not found on PATH; %s", InstallHint)
	}
}

// Run starts a redis-server with its files in dir (procs.StartRedis). The
// caller must Stop it. It is the TestMain-friendly form of Start.
func Run(dir string, opts Options) (*Server, error) {
	r, err := procs.StartRedis(dir, opts)
	if err != nil {
		return nil, err
	}
	return &Server{Redis: r}, nil
}

// ClusterOptions configure a Redis Cluster: procs.ClusterOptions. The zero
// value is 3 masters with a replica each.
type ClusterOptions = procs.ClusterOptions

// StartCluster runs a Redis Cluster for t (procs.StartCluster) with its
// files in t.TempDir(), and kills it in t.Cleanup, after logging the end of
// each node's log when t has failed. Without redis-server it fails or
// skips as Start does.
func StartCluster(t testing.TB, opts ClusterOptions) *procs.Cluster {
	t.Helper()
	return startTopology(t, "cluster", func(dir string) (*procs.Cluster, error) {
		return procs.StartCluster(dir, opts)
	})
}

// SentinelOptions configure a Sentinel set: procs.SentinelOptions. The zero
// value monitors "mymaster" without passwords.
type SentinelOptions = procs.SentinelOptions

// StartSentinel runs a master, two replicas and three sentinels for t
// (procs.StartSentinel) with their files in t.TempDir(), and kills them in
// t.Cleanup, after logging the end of each log when t has failed. Without
// redis-server it fails or skips as Start does.
func StartSentinel(t testing.TB, opts SentinelOptions) *procs.SentinelSet {
	t.Helper()
	return startTopology(t, "sentinel set", func(dir string) (*procs.SentinelSet, error) {
		return procs.StartSentinel(dir, opts)
	})
}

// startTopology starts a set of servers for t with start, kills them in
// t.Cleanup and logs the end of their logs first when t has failed.
func startTopology[T interface {
	Kill()
	Logs(lines int) string
}](t testing.TB, what string, start func(dir string) (T, error)) T {
	t.Helper()
	Require(t)
	top, err := start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Killed first: the logs are complete then.
		top.Kill()
		if t.Failed() {
			t.Logf("%s logs (end):\n%s", what, top.Logs(20))
		}
	})
	return top
}

// Stop kills the process by its pid and waits for it to exit. It is safe to
// call more than once.
func (s *Server) Stop() { s.Kill() }

// Client returns a go-redis client for database db, closed in t.Cleanup.
func (s *Server) Client(t testing.TB, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(s.ClientOptions(db))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// FreePort is procs.FreePort: a free loopback port, never one already
// returned in this process.
func FreePort() (int, error) { return procs.FreePort() }

// WriteCA is procs.WriteCA: the PEM file of a new CA that signed nothing,
// for certificate errors.
func WriteCA(dir string) (caFile string, err error) { return procs.WriteCA(dir) }

// DotEnv returns the Redis password and database that the repository's .env
// gives the compose set-up, so tests run against the same settings.
func DotEnv(t testing.TB) (password string, db int) {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	m, err := godotenv.Read(filepath.Join(root, ".env"))
	if err != nil {
		t.Fatalf("read .env: %v", err)
	}
	db, err = strconv.Atoi(m["REDIS_DB"])
	if err != nil {
		t.Fatalf(".env: REDIS_DB %q: %v", m["REDIS_DB"], err)
	}
	return m["REDIS_PASSWORD"], db
}

// RepoRoot walks up from the working directory to the folder with go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("redistest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Monitor streams the server's MONITOR output through redis-cli, as an
// operator would watch it, so tests see exactly the commands on the wire.
type Monitor struct {
	mu    sync.Mutex
	lines []string
}

// Monitor starts redis-cli monitor against s; it stops in t.Cleanup.
func (s *Server) Monitor(t testing.TB) *Monitor {
	t.Helper()
	args := []string{"-h", "127.0.0.1", "-p", strconv.Itoa(s.Port)}
	if s.TLS {
		args = append(args, "--tls", "--cacert", s.CAFile)
	}
	cmd := exec.Command("redis-cli", append(args, "monitor")...)
	if s.Password != "" {
		cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+s.Password)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-cli monitor: %v (%s)", err, InstallHint)
	}
	m := &Monitor{}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		m.read(out)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-copied
		_ = cmd.Wait()
	})
	// MONITOR prints nothing until a command runs, so send a marker until
	// it shows up: from then on every command is seen.
	c := redis.NewClient(s.ClientOptions(0))
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for !m.seen(monitorMarker) {
		if time.Now().After(deadline) {
			t.Fatal("redis-cli monitor did not start")
		}
		_ = c.Echo(context.Background(), monitorMarker).Err()
		time.Sleep(10 * time.Millisecond)
	}
	return m
}

const monitorMarker = "redistest-monitor-ready"

func (m *Monitor) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		m.mu.Lock()
		m.lines = append(m.lines, sc.Text())
		m.mu.Unlock()
	}
}

func (m *Monitor) seen(substr string) bool {
	for _, l := range m.Lines() {
		if strings.Contains(l, substr) {
			return true
		}
	}
	return false
}

// Lines returns a copy of the lines seen so far.
func (m *Monitor) Lines() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.lines...)
}

// WaitFor waits until a line containing substr has been seen and returns
// every line so far.
func (m *Monitor) WaitFor(t testing.TB, substr string, limit time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		lines := m.Lines()
		for _, l := range lines {
			if strings.Contains(l, substr) {
				return lines
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("MONITOR showed no line with %q within %v; saw:\n%s", substr, limit, strings.Join(lines, "\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
