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
	"slices"
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
// one Redis and once in quorum mode over three, where it goes on when a
// node stops.
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

func twoFreePorts(t *testing.T) []int {
	t.Helper()
	var ports []int
	for range 2 {
		p, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
	}
	return ports
}

func runDemo(t *testing.T, lockd, demo string, nodes int) {
	// One run of free ports for all, so that no web port is a node's.
	redisPort := freeRun(t, nodes+2)
	d := startDemo(t, lockd, demo, []int{redisPort + nodes, redisPort + nodes + 1},
		"-redis-port", strconv.Itoa(redisPort), "-redis-nodes", strconv.Itoa(nodes))
	d.curlBoth(t)
	// The replicas really use the demo's password-protected Redis nodes,
	// database 1.
	addrs := make([]string, nodes)
	for i := range addrs {
		addrs[i] = `127\.0\.0\.1:` + strconv.Itoa(redisPort+i)
	}
	waitOut(t, d.out, `web-1 \| .*Redis ready addr=`+strings.Join(addrs, ",")+` db=1`)
	if nodes > 1 {
		// A /v1 lease lands on every node that votes. Two replicas starting
		// together can each keep a node out for up to a second (one saw it
		// unmarked just before the other marked it), so wait until web-1
		// counts every node in.
		waitAllNodesIn(t, d.ports[0], nodes)
		resp, err := http.Post("http://localhost:"+strconv.Itoa(d.ports[0])+"/v1/locks/quorum-demo/acquire", "", nil)
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
		// A node stops, and the demo goes on over the others, as DEMO.md
		// says.
		last := "redis-" + strconv.Itoa(nodes)
		pid, _ := strconv.Atoi(d.out.WaitFor(t, `(?m)^`+last+` \| started \(pid (\d+)\)$`, time.Second)[1])
		if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		waitOut(t, d.out, `(?m)^`+last+` \| exited$`)
		resp, err = http.Post("http://localhost:"+strconv.Itoa(d.ports[1])+"/v1/locks/quorum-demo-2/acquire", "", nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("acquire with %s stopped: %v %v", last, resp, err)
		}
		resp.Body.Close()
	}
	d.interrupt(t, nodes+2)
}

// runningDemo is a lockdemo process that a test started and reads.
type runningDemo struct {
	cmd    *exec.Cmd
	out    *redistest.Buffer
	ports  []int // web-1's and web-2's
	exited chan error
}

// startDemo runs the lockdemo binary with args and its replicas on
// webPorts, from the repository root, where .env is, as make demo does, and
// waits for its banner. A demo operation lasts 100 ms.
func startDemo(t *testing.T, lockd, demo string, webPorts []int, args ...string) *runningDemo {
	t.Helper()
	d := &runningDemo{out: &redistest.Buffer{}, exited: make(chan error, 1), ports: webPorts}
	root, err := redistest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	args = append([]string{"-lockd", lockd, "-web-ports", strconv.Itoa(d.ports[0]) + "," + strconv.Itoa(d.ports[1])}, args...)
	d.cmd = exec.Command(demo, args...)
	d.cmd.Dir = root
	d.cmd.Env = append(os.Environ(), "CRITICAL_SECTION_DURATION=100ms")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.exited <- d.cmd.Wait() }()
	t.Cleanup(func() { _ = d.cmd.Process.Kill() })
	waitOut(t, d.out, `demo \| ready`)
	return d
}

// curlBoth sends the README's demo request to web-1, then web-2.
func (d *runningDemo) curlBoth(t *testing.T) {
	t.Helper()
	for i, port := range d.ports {
		resp, err := http.Get("http://localhost:" + strconv.Itoa(port) + "/lock?resource_id=my-test-key")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := `{"message":"Lock acquired and released successfully","resource_id":"my-test-key"}`; resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("web-%d: %d %s", i+1, resp.StatusCode, body)
		}
		waitOut(t, d.out, `(?m)^web-`+strconv.Itoa(i+1)+` \| \d{4}/\d\d/\d\d \d\d:\d\d:\d\d Lock released for resource my-test-key$`)
	}
}

// interrupt sends SIGINT, as a terminal's Ctrl-C would, and checks that
// lockdemo exits cleanly and that none of the procs processes it said it
// started is left.
func (d *runningDemo) interrupt(t *testing.T, procs int) {
	t.Helper()
	var pids []int
	for _, m := range regexp.MustCompile(`\| started \(pid (\d+)\)`).FindAllStringSubmatch(d.out.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		pids = append(pids, pid)
	}
	if len(pids) != procs {
		t.Fatalf("want %d started processes, log:\n%s", procs, d.out.String())
	}
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.exited:
		if err != nil {
			t.Fatalf("lockdemo exited with %v after Ctrl-C; log:\n%s", err, d.out.String())
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
// nodes ready on /readyz, and returns their addresses.
func waitAllNodesIn(t *testing.T, port, nodes int) []string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://localhost:" + strconv.Itoa(port) + "/readyz?verbose")
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Nodes []struct {
				Addr string `json:"addr"`
				OK   bool   `json:"ok"`
			} `json:"nodes"`
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		last = string(raw)
		if json.Unmarshal(raw, &body) != nil || len(body.Nodes) != nodes {
			continue
		}
		var in []string
		for _, n := range body.Nodes {
			if n.OK {
				in = append(in, n.Addr)
			}
		}
		if len(in) == nodes {
			return in
		}
	}
	t.Fatalf("web on :%d never counted all %d nodes in; last /readyz: %s", port, nodes, last)
	return nil
}

// TestDemoClusterAndSentinel runs lockdemo in its other two Redis modes, as
// make demo REDIS_MODE=cluster and REDIS_MODE=sentinel do: the README's curl
// answers on both replicas, a /v1 lease taken on either is released on the
// other, /readyz?verbose shows every master, the lock key is where the mode
// puts it (database 0 of the cluster, the .env database of the Sentinel
// master), the demo goes on when the Sentinel master dies, and Ctrl-C
// leaves no process behind.
func TestDemoClusterAndSentinel(t *testing.T) {
	redistest.Require(t)
	lockd := buildtest.Binary(t, buildtest.Module+"/cmd/lockd")
	demo := buildtest.Binary(t, buildtest.Module+"/cmd/lockdemo")
	password, db := redistest.DotEnv(t)

	t.Run("cluster", func(t *testing.T) {
		d := startDemo(t, lockd, demo, twoFreePorts(t), "-redis-mode", "cluster")
		masters := strings.Split(d.out.WaitFor(t, `demo \| ready: redis cluster, masters (\S+) with a replica each \(db 0\)`, time.Second)[1], ",")
		waitOut(t, d.out, `web-1 \| .*Redis ready addr=\S+ db=0`)
		d.curlBoth(t)
		got := waitAllNodesIn(t, d.ports[1], len(masters))
		slices.Sort(got)
		slices.Sort(masters)
		if len(masters) != 3 || !slices.Equal(got, masters) {
			t.Errorf("/readyz?verbose lists %v, the banner's masters are %v", got, masters)
		}
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: masters, Password: password})
		defer c.Close()
		d.leaseAcrossReplicas(t, c)
		d.interrupt(t, 6+2)
	})

	t.Run("sentinel", func(t *testing.T) {
		d := startDemo(t, lockd, demo, twoFreePorts(t), "-redis-mode", "sentinel")
		m := d.out.WaitFor(t, `demo \| ready: redis master \S+ with replicas \S+, sentinels (\S+) watching it as (\S+) \(db `+strconv.Itoa(db)+`\)`, time.Second)
		waitOut(t, d.out, `web-1 \| .*Redis ready addr=`+regexp.QuoteMeta(m[1])+` db=`+strconv.Itoa(db))
		d.curlBoth(t)
		if got := waitAllNodesIn(t, d.ports[1], 1); got[0] != "sentinel master "+m[2] {
			t.Errorf("/readyz?verbose lists %v, want the sentinels' master %s", got, m[2])
		}
		c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: m[2], SentinelAddrs: strings.Split(m[1], ","),
			SentinelPassword: password, Password: password, DB: db})
		defer c.Close()
		d.leaseAcrossReplicas(t, c)

		// The demo outlives its master, as DEMO.md says: the sentinels
		// promote a replica, and the replicas lock there.
		pid, _ := strconv.Atoi(d.out.WaitFor(t, `(?m)^redis \| started \(pid (\d+)\) on \S+, master$`, time.Second)[1])
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitOut(t, d.out, `(?m)^redis \| exited$`)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, err := http.Post("http://localhost:"+strconv.Itoa(d.ports[1])+"/v1/locks/after-failover/acquire", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no lease within 20 s of the master's death: %d; log:\n%s", resp.StatusCode, d.out.String())
			}
		}
		d.interrupt(t, 3+3+2)
	})
}

// leaseAcrossReplicas takes a /v1 lease on each replica and releases it on
// the other, checking through c that the lock's key is there while it is
// held, and gone once released.
func (d *runningDemo) leaseAcrossReplicas(t *testing.T, c redis.UniversalClient) {
	t.Helper()
	for i, from := range d.ports {
		to := d.ports[1-i]
		name := "demo-lease-" + strconv.Itoa(i+1)
		resp, err := http.Post("http://localhost:"+strconv.Itoa(from)+"/v1/locks/"+name+"/acquire", "application/json",
			strings.NewReader(`{"ttl":"30s","owner":"test"}`))
		if err != nil {
			t.Fatal(err)
		}
		var lease struct{ Token string }
		err = json.NewDecoder(resp.Body).Decode(&lease)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || lease.Token == "" {
			t.Fatalf("acquire %s on web-%d: %d %v", name, i+1, resp.StatusCode, err)
		}
		if n, err := c.Exists(t.Context(), "lock:"+name).Result(); err != nil || n != 1 {
			t.Errorf("while %s is held: lock:%s exists %d (%v)", name, name, n, err)
		}
		resp, err = http.Post("http://localhost:"+strconv.Itoa(to)+"/v1/locks/"+name+"/release", "application/json",
			strings.NewReader(`{"token":"`+lease.Token+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 204 {
			t.Fatalf("release %s on web-%d: %d", name, 2-i, resp.StatusCode)
		}
		if n, err := c.Exists(t.Context(), "lock:"+name).Result(); err != nil || n != 0 {
			t.Errorf("once %s is released: lock:%s exists %d (%v)", name, name, n, err)
		}
	}
}

func TestDemoRefusesQuorumWithClusterOrSentinel(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-redis-nodes", "3", "-redis-mode", "cluster"}, "-redis-nodes 3 (quorum mode) cannot be combined with -redis-mode cluster: choose one"},
		{[]string{"-redis-mode", "sentinel", "-redis-nodes", "2"}, "-redis-nodes 2 (quorum mode) cannot be combined with -redis-mode sentinel: choose one"},
		{[]string{"-redis-mode", "quorum"}, `-redis-mode wants single, cluster or sentinel, got "quorum"`},
	} {
		err := run(t.Context(), tt.args, func(string) string { return "" }, io.Discard)
		if err == nil || err.Error() != tt.want {
			t.Errorf("lockdemo %v: got %v, want %q", tt.args, err, tt.want)
		}
	}
}
