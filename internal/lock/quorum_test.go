package lock

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// three starts three independent Redis masters.
func three(t *testing.T, args ...string) []*redistest.Server {
	t.Helper()
	var s []*redistest.Server
	for range 3 {
		s = append(s, redistest.Start(t, redistest.Options{Password: "pw", Args: args}))
	}
	return s
}

// quorumManager returns a prepared, running Manager over srvs.
func quorumManager(t *testing.T, maxTTL time.Duration, srvs ...*redistest.Server) *Manager {
	t.Helper()
	var nodes []*redis.Options
	for _, s := range srvs {
		nodes = append(nodes, nodeOptions(s.Addr, "pw"))
	}
	m := New(Config{Nodes: nodes, MaxTTL: maxTTL})
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	listen(t, m)
	// The nodes of a new cluster vote once they have been up freshUptime.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		in := 0
		for _, n := range m.nodes {
			if !n.isOut() {
				in++
			}
		}
		if in == len(m.nodes) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d nodes of a new cluster in quorums after 10s", in, len(m.nodes))
		}
	}
}

// restartEmpty kills s and starts a new redis-server on its port with no
// data, as a node without persistence comes back after a crash.
func restartEmpty(t *testing.T, s *redistest.Server) *redistest.Server {
	t.Helper()
	s.Stop()
	n, err := redistest.Run(t.TempDir(), redistest.Options{Password: "pw", Port: s.Port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}

func cycle(t *testing.T, m *Manager, name string) Lease {
	t.Helper()
	// A long TTL where the Manager allows one: each node's bound is a share
	// of it, and these tests run beside others on a loaded machine.
	l, err := m.TryAcquire(context.Background(), name, Grant{TTL: min(10*time.Second, m.maxTTL)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseToken(context.Background(), name, l.Token); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestQuorumGrantsOnEveryNode(t *testing.T) {
	t.Parallel()
	srvs := three(t)
	m := quorumManager(t, time.Minute, srvs...)
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "q", Grant{TTL: 10 * time.Second, Owner: "o"})
	// A first fence is the nodes' clock floor: whole seconds, in µs.
	if err != nil || l.Fence%1_000_000 != 0 || l.Fence/1_000_000 < time.Now().Unix()-5 || l.Fence/1_000_000 > time.Now().Unix() {
		t.Fatalf("lease %+v, err %v; want the fence at the clock's second", l, err)
	}
	withFence := 0
	for _, s := range srvs {
		c := s.Client(t, 0)
		if v, _ := c.Get(ctx, "lock:q").Result(); tokenOf(v) != l.Token {
			t.Errorf("node %s holds %q", s.Addr, v)
		}
		if f, _ := c.Get(ctx, sharedKey(fenceCounterPrefix, "q")).Int64(); f == l.Fence {
			withFence++
		}
		if marker, _ := c.Get(ctx, markerKey).Result(); marker == "" {
			t.Errorf("node %s has no marker", s.Addr)
		}
	}
	if withFence < 2 {
		t.Errorf("fence written on %d nodes, want a majority", withFence)
	}
	if h, held, err := m.Inspect(ctx, "q"); err != nil || !held || h.Fence != l.Fence || h.Owner != "o" {
		t.Fatalf("inspect: %+v %v %v", h, held, err)
	}
	if _, err := m.Renew(ctx, "q", l.Token, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseToken(ctx, "q", l.Token); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := m.Inspect(ctx, "q"); held {
		t.Fatal("held after release")
	}
}

// TestQuorumSurvivesOneDeadNode: with one node killed, every call still
// works on the other two, and fences keep rising.
func TestQuorumSurvivesOneDeadNode(t *testing.T) {
	t.Parallel()
	srvs := three(t)
	m := quorumManager(t, time.Minute, srvs...)
	ctx := context.Background()
	last := cycle(t, m, "d").Fence
	srvs[2].Stop()
	for range 3 {
		l, err := m.TryAcquire(ctx, "d", Grant{TTL: 5 * time.Second})
		if err != nil || l.Fence <= last {
			t.Fatalf("with a node down: %+v, %v (last fence %d)", l, err, last)
		}
		last = l.Fence
		if _, held, err := m.Inspect(ctx, "d"); err != nil || !held {
			t.Fatalf("inspect with a node down: %v %v", held, err)
		}
		if _, err := m.Renew(ctx, "d", l.Token, 0); err != nil {
			t.Fatal(err)
		}
		if err := m.ReleaseToken(ctx, "d", l.Token); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestartedNodeIsKeptOutThenResynced builds the case where a naive
// quorum would hand out a lower fence: the highest fence lives on nodes A
// and B only; A restarts empty and B stops answering. Trusting A at once
// would grant from {A, C} with fence max(0, old C)+1. Instead A stays out
// (no quorum: unavailable) until its delay passes and its counters are
// copied from a majority; after that {A, C} grants the next fence.
func TestRestartedNodeIsKeptOutThenResynced(t *testing.T) {
	t.Parallel()
	srvs := three(t)
	a, b, c := srvs[0], srvs[1], srvs[2]
	m := quorumManager(t, time.Second, srvs...)
	ctx := context.Background()
	for range 3 {
		cycle(t, m, "r")
	}
	pause(t, c)
	var high int64
	for range 2 {
		high = cycle(t, m, "r").Fence // written to A and B only
	}
	resume(t, c)

	a = restartEmpty(t, a)
	pause(t, b)
	// Several tries: the first may only find A's old connections broken.
	for range 3 {
		l, err := m.TryAcquire(ctx, "r", Grant{TTL: time.Second})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("with A just restarted empty and B paused: got %+v %v, want ErrUnavailable (no safe quorum; highest fence %d)", l, err, high)
		}
	}
	if !m.nodes[0].isOut() {
		t.Fatal("the restarted node is not out")
	}
	resume(t, b)

	// The delay is MaxTTL plus margins (about 2s here); then the next
	// maintenance pass re-syncs A from B and C.
	deadline := time.Now().Add(10 * time.Second)
	for m.nodes[0].isOut() {
		if time.Now().After(deadline) {
			t.Fatal("the restarted node never came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f, _ := a.Client(t, 0).Get(ctx, sharedKey(fenceCounterPrefix, "r")).Int64(); f < high {
		t.Fatalf("re-synced counter %d, want at least %d", f, high)
	}
	pause(t, b)
	defer resume(t, b)
	l, err := m.TryAcquire(ctx, "r", Grant{TTL: time.Second})
	if err != nil || l.Fence <= high {
		t.Fatalf("from {A, C} after the re-sync: %+v %v, want a fence above %d", l, err, high)
	}
}

// TestDurableNodeRestartStaysIn: a node with appendfsync always loses
// nothing in a restart, so it may vote again at once.
func TestDurableNodeRestartStaysIn(t *testing.T) {
	t.Parallel()
	srvs := three(t, "--appendonly", "yes", "--appendfsync", "always")
	m := quorumManager(t, time.Hour, srvs...)
	cycle(t, m, "durable")
	a := srvs[0]
	a.Stop()
	again, err := redistest.Run(a.Dir, redistest.Options{Password: "pw", Port: a.Port, Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Stop)
	m.maintain(context.Background())
	if m.nodes[0].isOut() {
		t.Fatal("a durable node was kept out after a restart")
	}
	cycle(t, m, "durable")
}

func pause(t *testing.T, s *redistest.Server) {
	t.Helper()
	if err := s.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
}

func resume(t *testing.T, s *redistest.Server) {
	t.Helper()
	if err := s.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
}

// blackhole accepts connections and never answers, like a node behind a
// dropped network path.
func blackhole(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	tb.Cleanup(func() {
		_ = ln.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// BenchmarkQuorumCycle: a fenced acquire and release over three nodes,
// healthy and with one node blackholed (connections accepted, nothing
// answered), to show what a dead node adds.
//
//	go test -run '^$' -bench QuorumCycle ./internal/lock
func BenchmarkQuorumCycle(b *testing.B) {
	for _, dead := range []bool{false, true} {
		name := map[bool]string{false: "healthy", true: "one-blackholed"}[dead]
		b.Run(name, func(b *testing.B) {
			var nodes []*redis.Options
			for range 2 {
				s := redistest.Start(b, redistest.Options{Password: "pw"})
				nodes = append(nodes, nodeOptions(s.Addr, "pw"))
			}
			third := redistest.Start(b, redistest.Options{Password: "pw"})
			nodes = append(nodes, nodeOptions(third.Addr, "pw"))
			m := New(Config{Nodes: nodes, MaxTTL: time.Minute})
			b.Cleanup(func() { _ = m.Close() })
			if err := m.Prepare(context.Background()); err != nil {
				b.Fatal(err)
			}
			if dead {
				// Swap the third node's address for a blackhole after the
				// cluster was set up, as a network path that died.
				m.nodes[2].client.(*redis.Client).Options().Addr = blackhole(b)
				m.nodes[2].client.(*redis.Client).Options().OnConnect = nil
				third.Stop()
			}
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				l, err := m.TryAcquire(ctx, "bench", Grant{TTL: 10 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				if err := m.ReleaseToken(ctx, "bench", l.Token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestQuorumReleaseLeavesNoNodeHolding: a release answers only once every
// node lockd counts as healthy has deleted the key, so nothing of the
// released grant is left for the next acquire to meet.
func TestQuorumReleaseLeavesNoNodeHolding(t *testing.T) {
	t.Parallel()
	srvs := three(t)
	m := quorumManager(t, time.Minute, srvs...)
	ctx := context.Background()
	var clients []*redis.Client
	for _, s := range srvs {
		clients = append(clients, s.Client(t, 0))
	}
	for i := range 100 {
		cycle(t, m, "gone")
		for j, c := range clients {
			if n, err := c.Exists(ctx, "lock:gone").Result(); err != nil || n != 0 {
				t.Fatalf("cycle %d: node %d still holds the released lock (%d, %v)", i, j, n, err)
			}
		}
	}
}

// TestStoppedNodeIsSkippedThenProbedBack: a node that stops answering is
// marked slow by the first call that waits for it, skipped by the calls
// after it, and used again once a probe finds it answering.
func TestStoppedNodeIsSkippedThenProbedBack(t *testing.T) {
	t.Parallel()
	srvs := three(t)
	m := quorumManager(t, time.Minute, srvs...)
	cycle(t, m, "stop")
	pause(t, srvs[1])
	stopped := true
	defer func() {
		if stopped {
			resume(t, srvs[1])
		}
	}()
	cycle(t, m, "stop") // waits for node 1's timeout once
	if !m.nodes[1].isSlow() {
		t.Fatal("a stopped node is not marked slow after a call timed out on it")
	}
	for range 5 {
		cycle(t, m, "stop")
	}
	resume(t, srvs[1])
	stopped = false
	deadline := time.Now().Add(10 * time.Second)
	for m.nodes[1].isSlow() {
		if time.Now().After(deadline) {
			t.Fatal("the resumed node was never probed back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx := context.Background()
	// Another name: the stopped node may still hold "stop" for the TTL of
	// the grant whose release it missed.
	l, err := m.TryAcquire(ctx, "stop2", Grant{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := srvs[1].Client(t, 0).Get(ctx, "lock:stop2").Result(); tokenOf(v) != l.Token {
		t.Fatalf("the resumed node holds %q, not the new grant", v)
	}
}

// TestEveryNodeRestartedEmpty: all three nodes lose their data at once.
// The replica has seen them marked, so it does not take them for a new
// cluster: it keeps them out for the whole delay, then lets them back in
// with no node to copy fences from, and fences go on rising (their floor
// is the nodes' clock), with a WARN for each node.
func TestEveryNodeRestartedEmpty(t *testing.T) {
	t.Parallel()
	srvs := three(t)
	m, logs := loggedManager(t, srvs...)
	m.maxTTL, m.delay = time.Second, 4*time.Second
	ctx := context.Background()
	if err := m.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	listen(t, m)
	for deadline := time.Now().Add(10 * time.Second); m.nodes[0].isOut() || m.nodes[1].isOut() || m.nodes[2].isOut(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the nodes of a new cluster were not let in")
		}
	}
	var high int64
	for range 3 {
		high = cycle(t, m, "all").Fence
	}
	for i, s := range srvs {
		srvs[i] = restartEmpty(t, s)
	}
	restarted := time.Now()
	// Until the delay has passed, no grant: any node could have held a
	// lease that is still live.
	var l Lease
	var err error
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l, err = m.TryAcquire(ctx, "all", Grant{TTL: time.Second})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after every node restarted empty: %v", err)
		}
	}
	if waited := time.Since(restarted); waited < m.delay-time.Second {
		t.Errorf("granted %v after the restarts, before the %v delay", waited, m.delay)
	}
	if l.Fence <= high {
		t.Errorf("fence %d after every node lost its data, want above %d", l.Fence, high)
	}
	if n := strings.Count(logs.String(), "Redis node restarted without its data"); n != 3 {
		t.Errorf("%d WARNs about a node that lost its data, want 3:\n%s", n, logs.String())
	}
}
