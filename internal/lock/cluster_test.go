package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// clusterManager is a prepared, running Manager over the cluster c.
func clusterManager(t *testing.T, c *procs.Cluster, cfg Config) *Manager {
	t.Helper()
	cfg.Cluster = c.ClientOptions()
	if cfg.Replica == "" {
		cfg.Replica = "r-" + t.Name()
	}
	m := New(cfg)
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	listenCluster(t, m)
	return m
}

// listenCluster runs m.Run for the test and waits until every shard's
// released channel has this Manager's subscription.
func listenCluster(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	shards, err := m.cluster.shards()
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range shards {
		for {
			n, err := sh.client.PubSubShardNumSub(ctx, shardReleasedKey(sh.tag)).Result()
			if err != nil {
				t.Fatal(err)
			}
			if n[shardReleasedKey(sh.tag)] > 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// namesOnEveryShard returns per names for each master of m's cluster,
// spelt with the characters a name may hold, '{' and '}' excepted.
func namesOnEveryShard(t *testing.T, m *Manager, prefix string, per int) []string {
	t.Helper()
	topo := m.cluster.topo.Load()
	count := make([]int, len(topo.shards))
	var names []string
	for i := 0; len(names) < per*len(topo.shards); i++ {
		name := fmt.Sprintf("%s:%d.a@b", prefix, i)
		if s := topo.owner[keySlot(KeyPrefix+name)]; count[s] < per {
			count[s]++
			names = append(names, name)
		}
	}
	return names
}

// TestClusterEveryOperation runs every lock operation on names spread over
// the three shards of a real cluster, with two replicas: fences rise, the
// 409 names the holder, a waiter on one replica is woken by a release on
// the other, listing finds every lock once, and each shard reports ready.
func TestClusterEveryOperation(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, procs.ClusterOptions{})
	var mu sync.Mutex
	labels := map[string]int{} // NodeHook's labels, and the commands under each
	hook := func(node string) redis.Hook { return countHook{func() { mu.Lock(); labels[node]++; mu.Unlock() }} }
	a := clusterManager(t, c, Config{Replica: "a", NodeHook: hook})
	b := clusterManager(t, c, Config{Replica: "b"})
	ctx := context.Background()
	defer func() {
		// Each master's commands are counted under its own address.
		mu.Lock()
		defer mu.Unlock()
		for _, m := range must(c.Masters()) {
			if labels[m.Addr] == 0 {
				t.Errorf("no commands labelled %s: %v", m.Addr, labels)
			}
		}
	}()

	ok, health := a.Health(ctx, time.Second)
	if !ok || len(health) != 3 {
		t.Fatalf("health: %v %+v", ok, health)
	}
	names := namesOnEveryShard(t, a, "every", 4)
	leases := map[string]Lease{}
	for _, name := range names {
		l, err := a.TryAcquire(ctx, name, Grant{TTL: 20 * time.Second, Owner: "owner-a"})
		if err != nil {
			t.Fatal(name, err)
		}
		leases[name] = l
		var locked *LockedError
		if _, err := b.TryAcquire(ctx, name, Grant{TTL: time.Second}); !errors.As(err, &locked) ||
			locked.Holder.Owner != "owner-a" || locked.Holder.Fence != l.Fence {
			t.Fatalf("%s: second acquire: %v", name, err)
		}
		if h, held, err := b.Inspect(ctx, name); err != nil || !held || h.Fence != l.Fence {
			t.Fatalf("%s: inspect: %+v %v %v", name, h, held, err)
		}
		if _, err := b.Renew(ctx, name, l.Token, 0); err != nil {
			t.Fatalf("%s: renew: %v", name, err)
		}
		if err := b.Check(ctx, name, l.Fence); err != nil {
			t.Fatalf("%s: check: %v", name, err)
		}
	}
	var listed []string
	cursor := ""
	for {
		page, next, err := b.List(ctx, "every", 5, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			listed = append(listed, e.Name)
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	slices.Sort(listed)
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Fatalf("listed %v, want %v", listed, want)
	}

	// Hand-offs across replicas, one per name: a waits, b releases. The
	// holder's 20 s TTL is longer than the wait: only a wake-up serves it.
	for _, name := range names {
		got := make(chan error, 1)
		var next Lease
		go func() {
			var err error
			next, _, err = b.AcquireWait(ctx, name, Grant{TTL: 5 * time.Second}, 10*time.Second)
			got <- err
		}()
		for b.Waiting() == 0 {
			time.Sleep(time.Millisecond)
		}
		if err := a.ReleaseToken(ctx, name, leases[name].Token); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatalf("%s: waiter: %v", name, err)
		}
		if next.Fence <= leases[name].Fence {
			t.Fatalf("%s: fence %d after %d", name, next.Fence, leases[name].Fence)
		}
		if err := b.Check(ctx, name, leases[name].Fence); !errors.Is(err, ErrStaleFence) {
			t.Fatalf("%s: old fence: %v", name, err)
		}
		if err := b.ReleaseToken(ctx, name, next.Token); err != nil {
			t.Fatal(err)
		}
	}

	// The demo's lock, routed to its slot's master like any other.
	l, err := a.Acquire(ctx, "demo-on-cluster", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	// Nothing names a released lock, on any master.
	for _, m := range must(c.Masters()) {
		rdb := redis.NewClient(m.ClientOptions(0))
		keys, err := rdb.Keys(ctx, "lock:*").Result()
		rdb.Close()
		if err != nil || len(keys) > 0 {
			t.Fatalf("%s holds %v (%v)", m.Addr, keys, err)
		}
	}
}

// waitSubscribed waits until every Manager of ms sees the slots as the
// cluster does, and each master's released channel has all their
// subscriptions.
func waitSubscribed(t *testing.T, ms ...*Manager) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(20 * time.Second)
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		now, err := ms[0].cluster.readTopology(ctx)
		if err != nil {
			continue
		}
		current := true
		for _, m := range ms {
			current = current && slices.Equal(m.cluster.topo.Load().owner, now.owner)
		}
		for _, sh := range now.shards {
			n, err := sh.client.PubSubShardNumSub(ctx, shardReleasedKey(sh.tag)).Result()
			current = current && err == nil && n[shardReleasedKey(sh.tag)] == int64(len(ms))
		}
		if current {
			return
		}
	}
	t.Fatal("the replicas did not follow the new slots within 20 s")
}

// countHook calls saw for every command and pipeline.
type countHook struct{ saw func() }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.saw(); return next(ctx, cmd) }
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.saw(); return next(ctx, cmds) }
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestClusterReshardKeepsLeases moves slots between masters with redis-cli
// while locks are held, extended, waited for and taken: no caller ever sees
// a MOVED, ASK, TRYAGAIN or CROSSSLOT error, and every lease keeps its
// holder.
func TestClusterReshardKeepsLeases(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, procs.ClusterOptions{})
	a := clusterManager(t, c, Config{Replica: "a"})
	b := clusterManager(t, c, Config{Replica: "b"})
	ctx := context.Background()
	masters := must(c.Masters())
	// Names served by the first master, which gives its slots away.
	from, to := masters[0], masters[1]
	var held []Lease
	for i := 0; len(held) < 40; i++ {
		name := fmt.Sprintf("moving:%d", i)
		if owner, err := c.MasterForSlot(int(keySlot(KeyPrefix + name))); err != nil || owner != from {
			continue
		}
		l, err := a.TryAcquire(ctx, name, Grant{TTL: 30 * time.Second, Owner: "o"})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}

	var mu sync.Mutex
	var bad []error
	note := func(err error) {
		if err == nil || errors.Is(err, ErrLocked) || errors.Is(err, ErrNotHolder) {
			return
		}
		mu.Lock()
		bad = append(bad, err)
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				l := held[(i*4+w)%len(held)]
				_, err := b.Renew(ctx, l.Name, l.Token, 0)
				note(err)
				_, _, err = b.Inspect(ctx, l.Name)
				note(err)
				name := fmt.Sprintf("churn:%d:%d", w, i%50)
				nl, err := b.TryAcquire(ctx, name, Grant{TTL: 5 * time.Second})
				note(err)
				if err == nil {
					note(a.ReleaseToken(ctx, name, nl.Token))
				}
			}
		})
	}
	// A waiter on a held name throughout: woken when it is released after
	// the reshard.
	waited := make(chan error, 1)
	go func() {
		_, _, err := b.AcquireWait(ctx, held[0].Name, Grant{TTL: 5 * time.Second}, 60*time.Second)
		waited <- err
	}()
	if err := c.Reshard(from, to, 2000); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	for _, err := range bad {
		t.Error("a caller saw:", err)
	}
	moved := 0
	for _, l := range held {
		if owner, err := c.MasterForSlot(int(keySlot(KeyPrefix + l.Name))); err == nil && owner == to {
			moved++
		}
		h, ok, err := a.Inspect(ctx, l.Name)
		if err != nil || !ok || h.Fence != l.Fence {
			t.Fatalf("%s: after the reshard: %+v %v %v", l.Name, h, ok, err)
		}
	}
	if moved == 0 {
		t.Fatal("no held lock was in a moved slot")
	}
	t.Logf("%d of %d held locks moved", moved, len(held))
	// A release announced while a replica still subscribes by the old
	// slots may be missed (the waiter then waits for the TTL): release
	// once both follow the new ones.
	waitSubscribed(t, a, b)
	if err := a.ReleaseToken(ctx, held[0].Name, held[0].Token); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		for _, mm := range []*Manager{a, b} {
			tp := mm.cluster.topo.Load()
			for _, sh := range tp.shards {
				n, err := sh.client.PubSubShardNumSub(ctx, shardReleasedKey(sh.tag)).Result()
				t.Log(mm.replica, sh.addr, sh.tag, n, err)
			}
			t.Log(mm.replica, mm.cluster.homes(held[0].Name), keySlot(KeyPrefix+held[0].Name))
		}
		t.Fatal("the waiter was not woken after the reshard")
	}
}

// TestClusterMinReplicas: with MinReplicas 1 a grant is answered once a
// replica has it; with a shard's replica gone, a grant there is undone
// and refused as unavailable, and an extend is refused but keeps the
// lease.
func TestClusterMinReplicas(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, procs.ClusterOptions{})
	// A long timeout: a loaded machine must not make a live replica miss
	// it; the refusals below come from a replica that is gone.
	m := clusterManager(t, c, Config{MinReplicas: 1, ReplicaTimeout: 2 * time.Second})
	ctx := context.Background()
	names := namesOnEveryShard(t, m, "acked", 1)
	for _, name := range names {
		l, err := m.TryAcquire(ctx, name, Grant{TTL: 10 * time.Second})
		if err != nil {
			t.Fatal(name, err)
		}
		if err := m.ReleaseToken(ctx, name, l.Token); err != nil {
			t.Fatal(err)
		}
	}
	name := names[0]
	held, err := m.TryAcquire(ctx, name, Grant{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	master := must(c.MasterForSlot(int(keySlot(KeyPrefix + name))))
	for _, r := range must(c.ReplicasOf(master)) {
		r.Kill()
	}
	topo := m.cluster.topo.Load()
	other := ""
	for i := 0; other == ""; i++ {
		if n := fmt.Sprintf("other:%d", i); topo.owner[keySlot(KeyPrefix+n)] == topo.owner[keySlot(KeyPrefix+name)] {
			other = n
		}
	}
	if _, err := m.TryAcquire(ctx, other, Grant{TTL: 10 * time.Second}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("acquire without a replica: %v", err)
	}
	if _, held2, err := m.Inspect(ctx, other); err != nil || held2 {
		t.Fatalf("an unacknowledged grant was left in place: %v %v", held2, err)
	}
	if _, err := m.Renew(ctx, name, held.Token, 0); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("extend without a replica: %v", err)
	}
	if h, ok, err := m.Inspect(ctx, name); err != nil || !ok || h.Fence != held.Fence {
		t.Fatalf("an unacknowledged extend lost the lease: %+v %v %v", h, ok, err)
	}
	if !strings.Contains(fmt.Sprint(m.unacked("x", 0)), "0 of 1 replicas") {
		t.Fatal(m.unacked("x", 0))
	}
}

// TestClusterUnderLockdACL runs the cluster operations as a user limited to
// LockdACL: every command lockd sends, go-redis's own among them, is
// permitted, and no node logs a refusal.
func TestClusterUnderLockdACL(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, procs.ClusterOptions{Password: "admin", Users: []string{"lockd on >secret " + LockdACL}})
	opts := c.ClientOptions()
	opts.Username, opts.Password = "lockd", "secret"
	m := New(Config{Cluster: opts, Replica: "acl", MinReplicas: 1})
	t.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	if err := m.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); m.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	// Waits for the subscriptions as the admin: PUBSUB is not lockd's.
	for _, master := range must(c.Masters()) {
		o := master.ClientOptions(0)
		o.Password = "admin"
		rdb := redis.NewClient(o)
		for {
			chans, err := rdb.PubSubShardChannels(ctx, shardReleasedPrefix+"*").Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(chans) > 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		rdb.Close()
	}
	for _, name := range namesOnEveryShard(t, m, "acl", 2) {
		l, err := m.TryAcquire(ctx, name, Grant{TTL: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Renew(ctx, name, l.Token, 0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.List(ctx, "acl", 10, ""); err != nil {
			t.Fatal(err)
		}
		got := make(chan error, 1)
		go func() {
			_, _, err := m.AcquireWait(ctx, name, Grant{TTL: time.Second}, 5*time.Second)
			got <- err
		}()
		for m.Waiting() == 0 {
			time.Sleep(time.Millisecond)
		}
		if err := m.ReleaseToken(ctx, name, l.Token); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		dl, err := m.Acquire(ctx, name+"-demo", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Release(ctx, dl); err != nil {
			t.Fatal(err)
		}
	}
	if ok, h := m.Health(ctx, time.Second); !ok {
		t.Fatalf("health: %+v", h)
	}
	for _, n := range c.Nodes {
		o := n.ClientOptions(0)
		o.Password = "admin"
		rdb := redis.NewClient(o)
		entries, err := rdb.ACLLog(ctx, 10).Result()
		rdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("%s refused lockd: %s %s (%s)", n.Addr, e.Reason, e.Object, e.Context)
		}
	}
}

// TestClusterListAcrossReshard pages through held locks while redis-cli
// moves slots between masters: every lock held throughout is listed at
// least once.
func TestClusterListAcrossReshard(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, procs.ClusterOptions{Replicas: -1})
	m := clusterManager(t, c, Config{})
	ctx := context.Background()
	names := namesOnEveryShard(t, m, "paged", 100)
	for _, name := range names {
		if _, err := m.TryAcquire(ctx, name, Grant{TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	masters := must(c.Masters())
	moved := make(chan error, 1)
	listed := map[string]int{}
	cursor := ""
	for page := 0; ; page++ {
		if page == 2 {
			go func() { moved <- c.Reshard(masters[0], masters[2], 3000) }()
		}
		entries, next, err := m.List(ctx, "paged", 10, cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			listed[e.Name]++
		}
		if cursor = next; cursor == "" {
			break
		}
		time.Sleep(20 * time.Millisecond) // pages spread over the reshard
	}
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
	twice := 0
	for _, name := range names {
		switch n := listed[name]; {
		case n == 0:
			t.Errorf("%s was never listed", name)
		case n > 1:
			twice++
		}
	}
	t.Logf("%d locks, %d listed twice", len(names), twice)
}

func TestSlotRangesRoundTrip(t *testing.T) {
	set := make([]bool, slotCount)
	for _, s := range []int{0, 1, 2, 7, 100, 16383} {
		set[s] = true
	}
	r := compactSlots(set)
	if want := []uint16{0, 2, 7, 7, 100, 100, 16383, 16383}; !slices.Equal(r, want) {
		t.Fatalf("compact: %v, want %v", r, want)
	}
	if !slices.Equal(expandSlots(r), set) {
		t.Fatal("expand does not give the set back")
	}
	// What no cursor of lockd's holds is ignored, not trusted.
	if got := expandSlots([]uint16{5, 3, 20000, 20001, 9}); slices.Contains(got, true) {
		t.Fatal("a forged range was taken")
	}
}

// TestClusterRicherGrants: semaphores and fair queues on every shard, from
// two replicas. A queued waiter is granted by the releasing script, which
// tells its replica on the shard's own channel, and nothing is left after.
func TestClusterRicherGrants(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, procs.ClusterOptions{Replicas: -1})
	a := clusterManager(t, c, Config{Replica: "a"})
	b := clusterManager(t, c, Config{Replica: "b"})
	ctx := context.Background()
	for _, name := range namesOnEveryShard(t, a, "rich", 2) {
		p1, err := a.TryAcquire(ctx, name, sem(2))
		if err != nil {
			t.Fatal(name, err)
		}
		p2, err := b.TryAcquire(ctx, name, sem(2))
		if err != nil {
			t.Fatal(name, err)
		}
		var locked *LockedError
		if _, err := b.TryAcquire(ctx, name, sem(2)); !errors.As(err, &locked) || len(locked.Holders) != 2 {
			t.Fatalf("%s: third permit: %v", name, err)
		}
		got := make(chan Lease, 1)
		go func() {
			l, _, err := b.AcquireWait(ctx, name, Grant{TTL: 10 * time.Second, Kind: KindSemaphore, Limit: 2, Fair: true}, 8*time.Second)
			if err != nil {
				t.Error(name, err)
			}
			got <- l
		}()
		waitFor(t, func() bool { st, _, _ := a.InspectState(ctx, KindSemaphore, name); return len(st.Waiters) == 1 })
		if _, err := a.ReleaseKind(ctx, KindSemaphore, name, p1.Token); err != nil {
			t.Fatal(name, err)
		}
		var p3 Lease
		select {
		case p3 = <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the queued waiter was not granted on release", name)
		}
		if p3.Fence <= p2.Fence {
			t.Fatalf("%s: fence %d not above %d", name, p3.Fence, p2.Fence)
		}
		for _, l := range []Lease{p2, p3} {
			if _, err := a.ReleaseKind(ctx, KindSemaphore, name, l.Token); err != nil {
				t.Fatal(name, err)
			}
		}
		if n, err := a.cluster.client.Exists(ctx, KeyPrefix+name).Result(); err != nil || n != 0 {
			t.Fatalf("%s: key left: %d %v", name, n, err)
		}
	}
}
