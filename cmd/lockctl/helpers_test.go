package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/client"
	"github.com/go-distributed-lock/go-distributed-lock/internal/buildtest"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// bin holds the lockctl and lockd binaries built once for all tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lockctl-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	if err := buildtest.Build(dir, buildtest.Module+"/cmd/lockctl", buildtest.Module+"/cmd/lockd"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// lockd is a real lockd process over a real redis-server.
type lockd struct {
	URL string
	rdb *redis.Client // for looking behind the service's back
	c   *client.Client
}

// startLockd runs the lockd binary on a free port with extra environment
// (KEY=VALUE), and stops it when the test ends.
func startLockd(t *testing.T, env ...string) *lockd {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "lockd"))
	cmd.Dir = t.TempDir() // no .env there
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(port), "REDIS_ADDR="+srv.Addr, "LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("lockd log:\n%s", log.String())
		}
	})
	l := &lockd{URL: "http://127.0.0.1:" + strconv.Itoa(port), rdb: srv.Client(t, 0)}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(l.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("lockd not ready: %v\n%s", err, log.String())
		}
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	token := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "API_TOKENS="); ok {
			token = strings.Split(v, ",")[0]
		}
	}
	if l.c, err = client.New(l.URL, client.Options{Token: token, HTTPClient: &http.Client{Transport: tr}}); err != nil {
		t.Fatal(err)
	}
	return l
}

// result is a finished lockctl.
type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// lockctl is a lockctl process not started yet: env holds LOCKD_URL and
// anything the test adds.
func lockctl(url string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(bin, "lockctl"), args...)
	cmd.Env = append(os.Environ(), "LOCKD_URL="+url, "LOCKD_TOKEN=")
	return cmd
}

// execute runs cmd to its end (within a minute).
func execute(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return waitExit(t, cmd, start, &out, &errOut)
}

func waitExit(t *testing.T, cmd *exec.Cmd, start time.Time, out, errOut *bytes.Buffer) result {
	t.Helper()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(time.Minute):
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("%v did not end within a minute; stderr: %s", cmd.Args, errOut)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errOut.String(), took: time.Since(start)}
}

// started is a lockctl running in the background.
type started struct {
	cmd         *exec.Cmd
	start       time.Time
	out, errOut bytes.Buffer
}

func startCmd(t *testing.T, cmd *exec.Cmd) *started {
	t.Helper()
	s := &started{cmd: cmd, start: time.Now()}
	cmd.Stdout, cmd.Stderr = &s.out, &s.errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return s
}

func (s *started) wait(t *testing.T) result {
	t.Helper()
	return waitExit(t, s.cmd, s.start, &s.out, &s.errOut)
}

// waitFile waits until path exists and returns its content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never written", path)
		}
	}
}

// hold takes name for the test through the client package.
func (l *lockd) hold(t *testing.T, name string, ttl time.Duration) *client.Lease {
	t.Helper()
	lease, err := l.c.Acquire(context.Background(), name, client.AcquireOptions{TTL: ttl, Owner: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return lease
}

func (l *lockd) held(t *testing.T, name string) bool {
	t.Helper()
	info, err := l.c.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return info.Held
}
