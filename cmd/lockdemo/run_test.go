package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/buildtest"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// TestDemoRunsTopologyAndCtrlCStopsAll runs the real lockdemo binary, as
// `make demo` does, uses the README's curl, then sends SIGINT as a
// terminal's Ctrl-C would and checks that no process is left; once with
// one Redis and once in quorum mode over three.
func TestDemoRunsTopologyAndCtrlCStopsAll(t *testing.T) {
	redistest.Require(t)
	lockd := buildtest.Binary(t, buildtest.Module+"/cmd/lockd")
	demo := buildtest.Binary(t, buildtest.Module+"/cmd/lockdemo")
	for _, nodes := range []int{1, 3} {
		t.Run(strconv.Itoa(nodes)+" redis", func(t *testing.T) { runDemo(t, lockd, demo, nodes) })
	}
}

// freeRun finds n consecutive free loopback ports.
func freeRun(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		p, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		for i := range n {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+i))
			if err != nil {
				ok = false
				break
			}
			_ = l.Close()
		}
		if ok {
			return p
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

func runDemo(t *testing.T, lockd, demo string, nodes int) {
	redisPort := freeRun(t, nodes)
	var ports []int
	for range 2 {
		p, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	root, err := redistest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(demo, "-lockd", lockd, "-redis-port", strconv.Itoa(redisPort), "-redis-nodes", strconv.Itoa(nodes),
		"-web-ports", strconv.Itoa(ports[0])+","+strconv.Itoa(ports[1]))
	cmd.Dir = root // where .env is, as for make demo
	cmd.Env = append(os.Environ(), "CRITICAL_SECTION_DURATION=100ms")
	out := &redistest.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	waitOut(t, out, `demo \| ready`)
	for i, port := range ports {
		resp, err := http.Get("http://localhost:" + strconv.Itoa(port) + "/lock?resource_id=my-test-key")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := `{"message":"Lock acquired and released successfully","resource_id":"my-test-key"}`; resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("web-%d: %d %s", i+1, resp.StatusCode, body)
		}
		waitOut(t, out, `(?m)^web-`+strconv.Itoa(i+1)+` \| \d{4}/\d\d/\d\d \d\d:\d\d:\d\d Lock released for resource my-test-key$`)
	}
	// The replicas really use the demo's password-protected Redis nodes,
	// database 1.
	addrs := make([]string, nodes)
	for i := range addrs {
		addrs[i] = `127\.0\.0\.1:` + strconv.Itoa(redisPort+i)
	}
	waitOut(t, out, `web-1 \| .*Redis ready addr=`+strings.Join(addrs, ",")+` db=1`)
	if nodes > 1 {
		// A /v1 lease lands on every node that votes. Two replicas starting
		// together can each keep a node out for up to a second (one saw it
		// unmarked just before the other marked it), so wait until web-1
		// counts every node in.
		waitAllNodesIn(t, ports[0], nodes)
		resp, err := http.Post("http://localhost:"+strconv.Itoa(ports[0])+"/v1/locks/quorum-demo/acquire", "", nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("acquire in quorum mode: %v %v", resp, err)
		}
		resp.Body.Close()
		password, db := redistest.DotEnv(t)
		for i := range nodes {
			c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(redisPort+i), Password: password, DB: db})
			n, err := c.Exists(context.Background(), "lock:quorum-demo").Result()
			c.Close()
			if err != nil || n != 1 {
				t.Errorf("node %d: lock key exists %d (%v)", i+1, n, err)
			}
		}
	}

	var pids []int
	for _, m := range regexp.MustCompile(`\| started \(pid (\d+)\)`).FindAllStringSubmatch(out.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	if len(pids) != nodes+2 {
		t.Fatalf("want %d started processes, log:\n%s", nodes+2, out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("lockdemo exited with %v after Ctrl-C; log:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("lockdemo did not stop after SIGINT")
	}
	for _, pid := range pids {
		// Children are reaped by lockdemo, so a gone pid answers ESRCH.
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still running after Ctrl-C", pid)
		}
	}
}

func TestDemoRefusesTakenPort(t *testing.T) {
	taken, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := netListen(taken)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	redistest.Require(t)
	lockd := filepath.Join(t.TempDir(), "lockd")
	if err := os.WriteFile(lockd, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	err = run(t.Context(), []string{"-lockd", lockd, "-redis-port", strconv.Itoa(taken)}, func(string) string { return "" }, io.Discard)
	if err == nil || !regexp.MustCompile(`port \d+ is taken`).MatchString(err.Error()) {
		t.Fatalf("got %v, want a taken-port error", err)
	}
}

func waitOut(t *testing.T, out *redistest.Buffer, re string) {
	t.Helper()
	out.WaitFor(t, re, 20*time.Second)
}

func netListen(port int) (io.Closer, error) {
	return net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
}

func TestDemoSaysHowToInstallRedis(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no redis-server anywhere
	err := run(t.Context(), nil, func(string) string { return "" }, io.Discard)
	if err == nil || err.Error() != redisHint {
		t.Fatalf("got %v, want the install hint", err)
	}
}

// waitAllNodesIn waits until the replica on port reports every one of its
// nodes ready on /readyz.
func waitAllNodesIn(t *testing.T, port, nodes int) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://localhost:" + strconv.Itoa(port) + "/readyz?verbose")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Nodes []struct {
				OK bool `json:"ok"`
			} `json:"nodes"`
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(raw)
		if json.Unmarshal(raw, &body) != nil || len(body.Nodes) != nodes {
			continue
		}
		in := 0
		for _, n := range body.Nodes {
			if n.OK {
				in++
			}
		}
		if in == nodes {
			return
		}
	}
	t.Fatalf("web on :%d never counted all %d nodes in; last /readyz: %s", port, nodes, last)
}
