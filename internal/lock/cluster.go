package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// In a Redis Cluster go-redis routes each script to the master of its lock's
// slot, so the locks need nothing more. What is shared, the events stream
// and the channel that announces releases, is one of each per shard (per
// master): a script writes to its own node's, and a replica reads and
// subscribes to every shard's. They are named after the shard's home slot,
// the highest slot its master serves, through that slot's tag (slot.go), so
// they live on the master they belong to. (The highest, because redis-cli
// reshards a master's slots from its lowest: the home moves last.)
const (
	shardEventsPrefix   = "lockd:events:"
	shardReleasedPrefix = "lockd:released:"
)

func shardEventsKey(tag string) string   { return shardEventsPrefix + "{" + tag + "}" }
func shardReleasedKey(tag string) string { return shardReleasedPrefix + "{" + tag + "}" }

// shard is one master of a cluster, as this replica last saw the slots.
type shard struct {
	addr   string // host:port, as CLUSTER SLOTS gives it
	tag    string // its home slot's tag
	client *redis.Client
}

// topology is the cluster's slots as this replica last read them: owner[s]
// is the index in shards of slot s's master, shards sorted by address.
type topology struct {
	owner  []int16
	shards []shard
	// homes[i] is ARGV[9] for a name of shards[i] (see homes), and
	// homes[len(shards)] for a slot no master serves.
	homes []string
	// tags are the shards' tags, sorted: the events streams to read.
	tags []string
}

// shardOf returns the shard that serves key's slot, or nil when no master
// does (the cluster is incomplete, or not read yet).
func (t *topology) shardOf(key string) *shard {
	if t == nil {
		return nil
	}
	if i := t.owner[keySlot(key)]; i >= 0 {
		return &t.shards[i]
	}
	return nil
}

// clusterState holds a cluster Manager's view of the slots.
type clusterState struct {
	client *redis.ClusterClient
	topo   atomic.Pointer[topology]
}

// readTopology reads the slots with CLUSTER SLOTS and finds each master's
// client.
func (c *clusterState) readTopology(ctx context.Context) (*topology, error) {
	slots, err := c.client.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	t := &topology{owner: make([]int16, slotCount)}
	for i := range t.owner {
		t.owner[i] = -1
	}
	home := map[string]int{}
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		addr := s.Nodes[0].Addr
		if h, ok := home[addr]; !ok || s.End > h {
			home[addr] = min(s.End, slotCount-1)
		}
	}
	for addr, h := range home {
		t.shards = append(t.shards, shard{addr: addr, tag: slotTag(uint16(h))})
	}
	slices.SortFunc(t.shards, func(a, b shard) int { return strings.Compare(a.addr, b.addr) })
	// The clients go-redis keeps for the nodes it knows, by address: its
	// own view of the slots may lag CLUSTER SLOTS for a moment after a
	// reshard, but the nodes are the same.
	var mu sync.Mutex
	clients := map[string]*redis.Client{}
	err = c.client.ForEachShard(ctx, func(ctx context.Context, cl *redis.Client) error {
		mu.Lock()
		defer mu.Unlock()
		clients[cl.Options().Addr] = cl
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range t.shards {
		sh := &t.shards[i]
		if sh.client = clients[sh.addr]; sh.client == nil {
			// A master go-redis has not met yet (a new one, or a promoted
			// replica): its next reload finds it.
			c.client.ReloadState(ctx)
			return nil, fmt.Errorf("lock: go-redis does not know master %s yet", sh.addr)
		}
	}
	for i := range t.shards {
		tags := []string{t.shards[i].tag}
		for j, sh := range t.shards {
			if j != i {
				tags = append(tags, sh.tag)
			}
		}
		t.homes = append(t.homes, strings.Join(tags, " "))
	}
	var all []string
	for _, sh := range t.shards {
		all = append(all, sh.tag)
	}
	t.homes = append(t.homes, strings.Join(all, " "))
	t.tags = slices.Sorted(slices.Values(all))
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(t.shards, s.Nodes[0].Addr, func(a shard, addr string) int { return strings.Compare(a.addr, addr) })
		for slot := s.Start; slot <= s.End && slot < slotCount; slot++ {
			t.owner[slot] = int16(i)
		}
	}
	return t, nil
}

// refresh reads the slots again and keeps them when they changed; it
// reports whether they did.
func (c *clusterState) refresh(ctx context.Context) (bool, error) {
	t, err := c.readTopology(ctx)
	if err != nil {
		return false, err
	}
	old := c.topo.Load()
	if old != nil && slices.Equal(old.owner, t.owner) && slices.EqualFunc(old.shards, t.shards,
		func(a, b shard) bool { return a.addr == b.addr && a.tag == b.tag }) {
		return false, nil
	}
	c.topo.Store(t)
	return true, nil
}

// homes is a script's ARGV[9] for name: every shard's tag, the one that
// serves name's slot first. The script uses the first whose stream is on
// its node, so even when this replica's view is behind a reshard, the
// event goes to the stream of the node that made the change.
func (c *clusterState) homes(name string) string {
	t := c.topo.Load()
	if t == nil {
		return ""
	}
	if i := t.owner[keySlot(KeyPrefix+name)]; i >= 0 {
		return t.homes[i]
	}
	return t.homes[len(t.shards)]
}

// errNoTopology is returned while a cluster Manager has not read the slots.
var errNoTopology = errors.New("lock: the cluster's slots are not known yet")

// shards returns the masters as last read.
func (c *clusterState) shards() ([]shard, error) {
	t := c.topo.Load()
	if t == nil {
		return nil, errNoTopology
	}
	return t.shards, nil
}

// prepareCluster reads the slots, loads the scripts into every master and
// checks each (nodecheck.go). It returns ErrUnavailable unless every
// master can be reached and is fit for locks: each serves a share of the
// names.
func (m *Manager) prepareCluster(ctx context.Context) error {
	if _, err := m.cluster.refresh(ctx); err != nil {
		return unavailable("read cluster slots", err)
	}
	if err := m.loadScripts(ctx, m.nodes[0]); err != nil {
		return err
	}
	// The events connections read the slots and reach every master now,
	// within ctx, rather than in the first /v1/events, within
	// eventsTimeout.
	events := m.nodes[0].events.(*redis.ClusterClient)
	if err := events.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return c.Ping(ctx).Err() }); err != nil {
		return unavailable("connect for events", err)
	}
	_, health := m.Health(ctx, time.Second)
	var errs error
	for _, h := range health {
		if !h.OK {
			errs = errors.Join(errs, fmt.Errorf("shard %s: %s", h.Addr, h.Err))
		}
	}
	if errs != nil {
		return &kindError{ErrUnavailable, errs}
	}
	return nil
}

// clusterEvery is how often a cluster Manager reads the slots again, to
// follow failovers and reshards: its subscriptions move with the masters,
// and new masters get theirs.
const clusterEvery = time.Second

// followCluster keeps one sharded subscription per master to the shard's
// released channel, reading the slots every clusterEvery. go-redis's
// ClusterClient.SSubscribe would hold one connection to the master of
// the first channel only (the others' SSUBSCRIBE get MOVED on it), so each
// subscription is made on that master's own client. A subscription whose
// master changed is closed and made again on the new one; a release
// announced meanwhile is missed, and its waiters wait for the lease's end
// at most.
func (m *Manager) followCluster(ctx context.Context) {
	type sub struct {
		addr string
		stop context.CancelFunc
	}
	subs := map[string]sub{} // by shard tag
	var wg sync.WaitGroup
	defer func() {
		for _, s := range subs {
			s.stop()
		}
		wg.Wait()
	}()
	// Redis ends a sharded subscription whose slot moved away
	// (sunsubscribe): the slots are then read again at once.
	moved := make(chan struct{}, 1)
	failing := false
	t := time.NewTicker(clusterEvery)
	defer t.Stop()
	for {
		if _, err := m.cluster.refresh(ctx); err != nil {
			if !failing && ctx.Err() == nil {
				m.log.Warn("cannot read the Redis Cluster's slots", "err", err)
			}
			failing = true
		} else {
			failing = false
		}
		shards, _ := m.cluster.shards()
		want := map[string]shard{}
		for _, sh := range shards {
			want[sh.tag] = sh
		}
		for tag, s := range subs {
			if sh, ok := want[tag]; !ok || sh.addr != s.addr {
				s.stop()
				delete(subs, tag)
			}
		}
		for tag, sh := range want {
			if _, ok := subs[tag]; ok {
				continue
			}
			sctx, stop := context.WithCancel(ctx)
			subs[tag] = sub{addr: sh.addr, stop: stop}
			ps := sh.client.SSubscribe(sctx)
			wg.Go(func() { m.hear(sctx, ps, func() { _ = ps.SSubscribe(sctx, shardReleasedKey(tag)) }, moved) })
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-moved:
		}
	}
}

// clusterHealth is Health in cluster mode: one entry per master, each
// checked as a node is (nodecheck.go), and one more when some slots have no
// master. The cluster is ready when every master is, and every slot is
// served: a name in an unserved slot can be neither taken nor released.
func (m *Manager) clusterHealth(ctx context.Context, timeout time.Duration) (bool, []NodeHealth) {
	t := m.cluster.topo.Load()
	if t == nil {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := m.cluster.refresh(cctx)
		cancel()
		if t = m.cluster.topo.Load(); t == nil {
			return false, []NodeHealth{{Addr: m.nodes[0].addr, Err: "cannot read the cluster's slots: " + err.Error()}}
		}
	}
	out := make([]NodeHealth, len(t.shards))
	refusals := make([]*refusal, len(t.shards))
	var wg sync.WaitGroup
	for i, sh := range t.shards {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			h := NodeHealth{Addr: sh.addr}
			r, err := readRefusal(cctx, sh.client)
			switch {
			case err != nil:
				h.Err = err.Error()
			case r != nil:
				h.Err, refusals[i] = r.Error(), r
			default:
				h.OK = true
			}
			out[i] = h
		})
	}
	wg.Wait()
	var first *refusal // the one noted (and logged) for the cluster
	if i := slices.IndexFunc(refusals, func(r *refusal) bool { return r != nil }); i >= 0 {
		first = refusals[i]
	}
	m.noteRefusal(m.nodes[0], first)
	unserved := 0
	for _, o := range t.owner {
		if o < 0 {
			unserved++
		}
	}
	if unserved > 0 {
		out = append(out, NodeHealth{Addr: "slots", Err: fmt.Sprintf("%d of %d slots have no master", unserved, slotCount)})
	}
	for _, h := range out {
		if !h.OK {
			return false, out
		}
	}
	return true, out
}

// clusterList adds to names, up to limit, the locks whose names start with
// prefix, walking the masters one after another with SCAN and keeping its
// place in cur. A master's slots count as listed once a whole SCAN of it
// ended while it served them, not moving, from start to end (as it says
// itself: stableSlots): SCAN returns every key that stayed on the node
// throughout. Keys of slots already listed are
// skipped, so while the slots stay put nothing is listed twice; a slot that
// moves to a master already walked is walked again there, so a lock held
// throughout the listing is listed at least once, maybe twice.
func (m *Manager) clusterList(ctx context.Context, cur *listCursor, prefix string, names []string, limit int) ([]string, error) {
	t := m.cluster.topo.Load()
	if t == nil {
		return nil, unavailable("list", errNoTopology)
	}
	seen := expandSlots(cur.Seen)
	// left reports whether the shard at addr serves a slot not listed yet.
	left := func(addr string) bool {
		for slot, o := range t.owner {
			if o >= 0 && !seen[slot] && t.shards[o].addr == addr {
				return true
			}
		}
		return false
	}
	match := KeyPrefix + globEscape(prefix) + "*"
	for scans := 0; !cur.Done && len(names) < limit && scans < maxScans; scans++ {
		sh := t.shardByAddr(cur.Addr)
		if sh == nil || !left(sh.addr) {
			// Start on the first master with slots left to list, from the
			// slots it says it serves itself (this replica's view may lag).
			sh, cur.Scan, cur.Addr, cur.Start = nil, 0, "", nil
			for i := range t.shards {
				if left(t.shards[i].addr) {
					sh = &t.shards[i]
					break
				}
			}
			if sh == nil {
				if slices.Contains(t.owner, -1) {
					return nil, unavailable("list", errors.New("some slots have no master"))
				}
				cur.Done = true
				break
			}
			start, err := stableSlots(ctx, sh.client)
			if err != nil {
				return nil, &kindError{ErrUnavailable, fmt.Errorf("lock: list: %w", err)}
			}
			for slot := range start {
				start[slot] = start[slot] && !seen[slot]
			}
			cur.Addr, cur.Start = sh.addr, compactSlots(start)
		}
		keys, next, err := sh.client.Scan(ctx, cur.Scan, match, int64(limit-len(names))).Result()
		if err != nil {
			return nil, &kindError{ErrUnavailable, fmt.Errorf("lock: list: %w", err)}
		}
		cur.Scan = next
		for _, k := range keys {
			if seen[keySlot(k)] {
				continue
			}
			names = cur.take(names, strings.TrimPrefix(k, KeyPrefix), limit)
		}
		if next == 0 {
			now, err := stableSlots(ctx, sh.client)
			if err != nil {
				return nil, &kindError{ErrUnavailable, fmt.Errorf("lock: list: %w", err)}
			}
			start := expandSlots(cur.Start)
			for slot := range seen {
				seen[slot] = seen[slot] || start[slot] && now[slot]
			}
			if !slices.Contains(start, true) {
				// Its slots were all on the move: look again later, without
				// looping on it within this page.
				break
			}
			cur.Addr, cur.Start = "", nil
		}
	}
	cur.Seen = compactSlots(seen)
	return names, nil
}

// stableSlots asks the master c which slots it serves and is not moving
// (CLUSTER NODES, its own line): a slot migrating away loses keys during a
// SCAN while the node still serves it, and one being imported is not yet
// whole there.
func stableSlots(ctx context.Context, c *redis.Client) ([]bool, error) {
	nodes, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	set := make([]bool, slotCount)
	for line := range strings.SplitSeq(nodes, "\n") {
		// id addr flags master ping pong epoch link slot...
		f := strings.Fields(line)
		if len(f) < 8 || !slices.Contains(strings.Split(f[2], ","), "myself") {
			continue
		}
		var moving []int
		for _, r := range f[8:] {
			if strings.HasPrefix(r, "[") {
				// [slot->-id] migrating, [slot-<-id] importing
				if n, err := strconv.Atoi(strings.TrimPrefix(r[:strings.IndexAny(r, "-")], "[")); err == nil {
					moving = append(moving, n)
				}
				continue
			}
			lo, hi, ranged := strings.Cut(r, "-")
			first, err1 := strconv.Atoi(lo)
			last, err2 := strconv.Atoi(hi)
			if !ranged {
				last, err2 = first, nil
			}
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("CLUSTER NODES: bad slot range %q", r)
			}
			for slot := max(first, 0); slot <= last && slot < slotCount; slot++ {
				set[slot] = true
			}
		}
		for _, slot := range moving {
			if slot >= 0 && slot < slotCount {
				set[slot] = false
			}
		}
		return set, nil
	}
	return nil, errors.New("CLUSTER NODES has no line for the node itself")
}

// shardByAddr returns the master at addr, or nil.
func (t *topology) shardByAddr(addr string) *shard {
	for i := range t.shards {
		if t.shards[i].addr == addr {
			return &t.shards[i]
		}
	}
	return nil
}

// compactSlots writes a set of slots as ranges: first, last, first, last...
func compactSlots(set []bool) []uint16 {
	var out []uint16
	for slot := 0; slot < len(set); slot++ {
		if !set[slot] {
			continue
		}
		first := slot
		for slot+1 < len(set) && set[slot+1] {
			slot++
		}
		out = append(out, uint16(first), uint16(slot))
	}
	return out
}

// expandSlots reads compactSlots's ranges back; it ignores what no cursor
// of lockd's holds (an odd count, a range out of order or beyond the slots).
func expandSlots(ranges []uint16) []bool {
	set := make([]bool, slotCount)
	for i := 0; i+1 < len(ranges); i += 2 {
		for slot := int(ranges[i]); slot <= int(ranges[i+1]) && slot < slotCount; slot++ {
			set[slot] = true
		}
	}
	return set
}
