// Package redistest starts real redis-server processes for tests: each on a
// free loopback port, with its files in a temporary directory, stopped by
// process id when the test ends. Tests never touch a Redis they did not start.
//
// A server can serve TLS only, with a test CA generated in its directory
// (tls.go), and can have ACL users besides the default one (LockdACL is the
// rule lockd needs).
package redistest

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
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

	"github.com/joho/godotenv"
	"github.com/redis/go-redis/v9"
)

// InstallHint says how to get the binary these helpers need.
const InstallHint = "install it with: apt-get install -y redis-server"

// Options configure a server. The zero value is a password-less server on a
// free port.
type Options struct {
	Password string
	Port     int      // 0 picks a free port
	Args     []string // extra redis-server arguments
	// TLS serves TLS only, on Port, with a certificate for 127.0.0.1 signed
	// by a CA generated for this server (Server.CAFile). Clients need no
	// certificate of their own.
	TLS bool
	// Users are ACL SETUSER argument lists, user name first, split on
	// spaces, run as the default user once the server is up:
	// "lockd on >secret " + LockdACL.
	Users []string
}

// Server is one running redis-server process.
type Server struct {
	Addr     string
	Port     int
	Password string
	Dir      string
	// TLS is set when the server speaks only TLS; CAFile is then the PEM
	// file of the CA that signed its certificate.
	TLS    bool
	CAFile string

	roots *x509.CertPool // CAFile's certificate, for clients
	cmd   *exec.Cmd
	done  chan struct{}
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

// Run starts a redis-server with its files in dir. The caller must Stop it.
// It is the TestMain-friendly form of Start.
func Run(dir string, opts Options) (*Server, error) {
	port := opts.Port
	if port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		port = p
	}
	args := []string{
		"--port", strconv.Itoa(port),
	}
	var t *serverTLS
	if opts.TLS {
		var err error
		if t, err = writeServerTLS(dir); err != nil {
			return nil, err
		}
		// Port 0 turns plaintext off, so a client that forgets TLS fails.
		args = []string{
			"--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", t.certFile, "--tls-key-file", t.keyFile,
			"--tls-ca-cert-file", t.caFile, "--tls-auth-clients", "no",
		}
	}
	args = append(args,
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	)
	if opts.Password != "" {
		args = append(args, "--requirepass", opts.Password)
	}
	args = append(args, opts.Args...)
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redistest: start redis-server: %w (%s)", err, InstallHint)
	}
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port,
		Password: opts.Password, Dir: dir, cmd: cmd, done: make(chan struct{}),
	}
	if t != nil {
		s.TLS, s.CAFile, s.roots = true, t.caFile, t.roots
	}
	go func() { _ = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(10 * time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	if err := s.addUsers(opts.Users); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// ClientOptions returns go-redis options for database db as the default
// user, over TLS when the server speaks it. Tests set Username and Password
// on them to connect as another user.
func (s *Server) ClientOptions(db int) *redis.Options {
	o := &redis.Options{Addr: s.Addr, Password: s.Password, DB: db}
	if s.TLS {
		o.TLSConfig = s.TLSConfig()
	}
	return o
}

// TLSConfig returns a client configuration that trusts only the server's
// CA, or nil for a plaintext server. Each call returns a new value, so a
// test may change it.
func (s *Server) TLSConfig() *tls.Config {
	if !s.TLS {
		return nil
	}
	return &tls.Config{RootCAs: s.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func (s *Server) addUsers(users []string) error {
	if len(users) == 0 {
		return nil
	}
	c := redis.NewClient(s.ClientOptions(0))
	defer c.Close()
	for _, u := range users {
		fields := strings.Fields(u)
		if len(fields) == 0 {
			return errors.New("redistest: empty entry in Options.Users")
		}
		args := []any{"ACL", "SETUSER"}
		for _, f := range fields {
			args = append(args, f)
		}
		if err := c.Do(context.Background(), args...).Err(); err != nil {
			// The rules hold a password: name only the user.
			return fmt.Errorf("redistest: ACL SETUSER %s: %w", fields[0], err)
		}
	}
	return nil
}

func (s *Server) waitReady(limit time.Duration) error {
	o := s.ClientOptions(0)
	o.MaxRetries = -1
	c := redis.NewClient(o)
	defer c.Close()
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		info, err := c.Info(ctx, "server").Result()
		cancel()
		if err == nil && strings.Contains(info, "process_id:"+strconv.Itoa(s.cmd.Process.Pid)+"\r\n") {
			return nil
		}
		if err == nil {
			// Another redis-server holds the port; this one will exit.
			err = fmt.Errorf("redistest: port %d is another redis-server's", s.Port)
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			return fmt.Errorf("redistest: redis-server on %s exited at start: %s", s.Addr, lastLines(string(log), 5))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: redis-server on %s not ready after %v: %w", s.Addr, limit, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the process by its pid and waits for it to exit. It is safe to
// call more than once.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

// Pid is the server process's id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Signal sends sig to the server process, for tests that pause it with
// SIGSTOP and resume it with SIGCONT.
func (s *Server) Signal(sig os.Signal) error {
	return s.cmd.Process.Signal(sig)
}

// Client returns a go-redis client for database db, closed in t.Cleanup.
func (s *Server) Client(t testing.TB, db int) *redis.Client {
	t.Helper()
	c := redis.NewClient(s.ClientOptions(db))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// FreePort asks the kernel for a free loopback port, never one it already
// returned in this process: a test that restarts a node on its port leaves
// the port free for a moment, and a parallel test must not take it then.
// Another process may still take it before it is used; waitReady notices
// when the server answering is not the one started.
func FreePort() (int, error) {
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		given.Lock()
		seen := given.ports[port]
		given.ports[port] = true
		given.Unlock()
		if !seen {
			return port, nil
		}
	}
}

// given is every port FreePort returned in this process.
var given = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

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

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
