package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// freshUptime is how long every node of a new cluster must have been up
// before it votes: more than the one-second granularity of quorum fences'
// clock floor (INFO gives uptime in whole seconds, so 2 means at least 2 s).
const freshUptime = 2 * time.Second

// markerKey holds, on each node, the Redis run id under which lockd last
// found the node's data whole. A node whose run id no longer matches has
// restarted since, and may have lost lock keys and fence counters.
const markerKey = "lockd:node"

// errNodeOut refuses work on a node kept out of quorums.
var errNodeOut = errors.New("lock: redis node is kept out of quorums after a restart")

// node is one independent Redis master. In quorum mode a node that
// restarted without appendfsync always is kept out of quorums until every
// lease it may have forgotten has expired (Redlock's delayed restart), and
// until its fence counters are raised to the majority's.
type node struct {
	index int
	addr  string // for logs: host:port, never credentials
	// client is a *redis.Client (one node; in Sentinel mode one that
	// follows the master), or in cluster mode a *redis.ClusterClient.
	client redis.UniversalClient
	// events serves blocking XREADs of the events streams only, from its
	// own pool, so that however many dashboards are open, lock calls never
	// wait for a connection a stream reader holds.
	events redis.UniversalClient

	mu       sync.Mutex
	out      bool
	outUntil time.Time // when the delay ends; re-sync follows
	// slow is set when a call to the node failed without an answer from
	// Redis (a timeout, a refused or broken connection). A slow node is
	// skipped by every request until a probe (see Run) finds it answering,
	// so one stopped node costs one per-node timeout, not one per request.
	slow bool
	// runID is the Redis run id this replica last saw the node marked
	// with: once set, the node coming back empty is a restart that lost
	// data, never a new cluster.
	runID string
	// refused is why the node's last check found it unfit for locks
	// (nodecheck.go), or "": it is kept so that only a change is logged.
	refused string
}

func (n *node) isOut() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.out
}

// usable reports whether requests may use n now: it is in quorums and
// answered its last call.
func (n *node) usable() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return !n.out && !n.slow
}

func (n *node) isSlow() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.slow
}

func (n *node) setSlow(slow bool, log *slog.Logger) {
	n.mu.Lock()
	changed := n.slow != slow
	n.slow = slow
	n.mu.Unlock()
	switch {
	case changed && slow:
		log.Warn("Redis node not answering; skipped until a probe answers", "node", n.index, "addr", n.addr)
	case changed:
		log.Info("Redis node answering again", "node", n.index, "addr", n.addr)
	}
}

// errNodeSlow refuses work on a node that did not answer its last call.
var errNodeSlow = errors.New("lock: redis node skipped until it answers a probe")

// unanswered reports whether err means the node gave no answer, as
// opposed to Redis answering with an error, or the caller giving up.
func unanswered(err error) bool {
	var re redis.Error
	return err != nil && !errors.As(err, &re) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, errNodeOut) && !errors.Is(err, errNodeSlow)
}

// healthHook marks a node slow when one of its commands gets no answer.
// It sees every command, whichever path (redsync or our own scripts) sent
// it.
type healthHook struct {
	n   *node
	log *slog.Logger
}

func (h healthHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h healthHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		return h.saw(ctx, next(ctx, cmd))
	}
}

func (h healthHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		return h.saw(ctx, next(ctx, cmds))
	}
}

// saw marks the node slow when err says it gave no answer, outside the
// maintenance checks (which look at nodes known to be in trouble).
func (h healthHook) saw(ctx context.Context, err error) error {
	if unanswered(err) && !isMaintenance(ctx) {
		h.n.setSlow(true, h.log)
	}
	return err
}

// probeSlow pings every slow node and lets back those that answer.
func (m *Manager) probeSlow(ctx context.Context) {
	var wg sync.WaitGroup
	for _, n := range m.nodes {
		if !n.isSlow() {
			continue
		}
		wg.Go(func() {
			// Not a maintenance context: a new connection to a node that
			// restarted meanwhile is judged before the node may vote.
			cctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			if n.client.Ping(cctx).Err() == nil {
				n.setSlow(false, m.log)
			}
		})
	}
	wg.Wait()
}

// probeEvery and probeTimeout pace the probes of slow nodes.
const (
	probeEvery   = 100 * time.Millisecond
	probeTimeout = 250 * time.Millisecond
)

// pool is the node's redsync pool: it refuses while the node is out or
// slow, so redsync counts the node as failed and needs a quorum of the
// others.
type pool struct {
	n     *node
	inner redsyncredis.Pool
}

func (p pool) Get(ctx context.Context) (redsyncredis.Conn, error) {
	if p.n.isOut() {
		return nil, errNodeOut
	}
	if p.n.isSlow() {
		return nil, errNodeSlow
	}
	return p.inner.Get(detached{Context: context.WithoutCancel(ctx), ctx: ctx})
}

// detached keeps a context's deadline but not its cancellation: a caller
// that goes away mid-call must not leave a SET NX or a delete half done
// across the nodes. Each command completes, bounded by the deadline, as
// Redlock intends: the lock is taken (or released) on every node that
// answers in time.
type detached struct {
	context.Context
	ctx context.Context
}

func (d detached) Deadline() (time.Time, bool) { return d.ctx.Deadline() }

// nodeIOTimeout bounds a dial, read or write to a node when its options do
// not: a dead node costs at most this, and in quorum mode the others answer
// meanwhile. (Lock calls bound themselves tighter, by context.)
const nodeIOTimeout = 2 * time.Second

// EventsPoolSize bounds each node's pool of connections for the events
// stream, apart from the lock calls' pool: one for the replica's blocking
// XREAD of each shard the node serves, the rest for catch-up reads (an SSE
// client resuming, the expiry watcher), which queue for a connection
// rather than open one each. So a replica holds at most the lock pool,
// the subscriber and these, however many SSE clients and waiters it has.
const EventsPoolSize = 4

// tune makes every go-redis setting the lock depends on, and only here;
// the options carry where and as whom to connect. Context deadlines reach
// the socket, so a per-node bound holds even when a node stops answering;
// no automatic retries, because a retried release whose first try worked
// reports the lock already gone. (In cluster mode go-redis still follows
// MOVED and ASK, and retries a command a failing-over shard refused.)
// A pipeline's replies are read within ReadTimeout: read is raised to at
// least minRead, which leaves room for a WAIT (see evalAcked).
// Pipelines share the pool (go-redis would otherwise keep a second pool of
// up to 10 connections for them, and lockd pipelines rarely: queue looks,
// WAIT), so a pool's size is its ceiling.
func tune(minRead time.Duration, ctxTimeouts *bool, retries, pipelinePool *int, dial, read, write *time.Duration) {
	*ctxTimeouts = true
	*retries = -1
	*pipelinePool = -1
	for _, d := range []*time.Duration{dial, read, write} {
		if *d == 0 {
			*d = nodeIOTimeout
		}
	}
	*read = max(*read, minRead)
}

// newNode connects to one node; onConnect is the node's OnConnect.
func newNode(i int, opt *redis.Options, minRead time.Duration, onConnect func(*node) func(context.Context, *redis.Conn) error) *node {
	o := *opt
	tune(minRead, &o.ContextTimeoutEnabled, &o.MaxRetries, &o.PipelinePoolSize, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout)
	eo := o
	eo.PoolSize = EventsPoolSize
	n := &node{index: i, addr: o.Addr}
	o.OnConnect = onConnect(n)
	n.client, n.events = redis.NewClient(&o), redis.NewClient(&eo)
	return n
}

// newSentinelNode connects to a Sentinel-managed master: go-redis asks the
// sentinels where it is, and moves to the new master after a failover.
func newSentinelNode(opt *redis.FailoverOptions, minRead time.Duration, onConnect func(*node) func(context.Context, *redis.Conn) error) *node {
	o := *opt
	tune(minRead, &o.ContextTimeoutEnabled, &o.MaxRetries, &o.PipelinePoolSize, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout)
	eo := o
	eo.PoolSize = EventsPoolSize
	n := &node{addr: "sentinel master " + o.MasterName}
	c := redis.NewFailoverClient(&o)
	// Set on the master's options only: FailoverOptions.OnConnect would
	// also run on the connections to the sentinels.
	c.Options().OnConnect = onConnect(n)
	n.client, n.events = c, redis.NewFailoverClient(&eo)
	return n
}

// clusterRedirects is how many MOVED, ASK or refused tries one command may
// take: enough for a reshard and for the seconds a shard fails over.
const clusterRedirects = 8

// newClusterNode connects to a Redis Cluster: the one node stands for
// every shard, go-redis routing each command to its slot's master.
func newClusterNode(opt *redis.ClusterOptions, minRead time.Duration, onConnect func(*node) func(context.Context, *redis.Conn) error) (*node, *redis.ClusterClient) {
	o := *opt
	tune(minRead, &o.ContextTimeoutEnabled, &o.MaxRetries, &o.PipelinePoolSize, &o.DialTimeout, &o.ReadTimeout, &o.WriteTimeout)
	o.MaxRedirects = clusterRedirects
	eo := o
	eo.PoolSize = EventsPoolSize
	n := &node{addr: "cluster " + strings.Join(o.Addrs, ",")}
	o.OnConnect = onConnect(n)
	c := redis.NewClusterClient(&o)
	n.client, n.events = c, redis.NewClusterClient(&eo)
	return n, c
}

// maintenanceKey marks contexts of the checks that may use a node while it
// is out.
type maintenanceKey struct{}

func isMaintenance(ctx context.Context) bool { return ctx.Value(maintenanceKey{}) != nil }

// onConnect runs on every new connection to a node. A restarted node drops
// every connection, so the first command after a restart always comes here
// first: the scripts are loaded again, and in quorum mode the node is
// judged before it can vote.
func (m *Manager) onConnect(n *node) func(context.Context, *redis.Conn) error {
	load := scriptsOnConnect(m.sc, m.scripts)
	return func(ctx context.Context, cn *redis.Conn) error {
		if err := load(ctx, cn); err != nil {
			return err
		}
		if isMaintenance(ctx) || m.cluster != nil {
			// A cluster's marker would live on one shard of many: restarts
			// are not told apart there (fences stay safe by their clock
			// floor).
			return nil
		}
		if len(m.nodes) == 1 {
			return m.markSingle(ctx, n, cn)
		}
		st, err := readNodeState(ctx, cn)
		if err != nil {
			return err
		}
		if m.judge(n, st) {
			return errNodeOut
		}
		return nil
	}
}

// markSingle checks, over c, whether the one node restarted since this
// replica last saw it, reports it, and marks the node with its run id. One
// node decides alone: a restart is reported, never waited out (fences stay
// safe by their clock floor; leases held on a node that lost its data are
// gone either way). A node already marked with its run id costs one round
// trip.
func (m *Manager) markSingle(ctx context.Context, n *node, c redis.Cmdable) error {
	st, err := readNodeState(ctx, c)
	if err != nil {
		return err
	}
	if st.marker != st.runID {
		m.noticeRestart(n, st)
		if err := c.Set(ctx, markerKey, st.runID, 0).Err(); err != nil {
			return err
		}
	}
	n.mu.Lock()
	n.runID = st.runID
	n.mu.Unlock()
	return nil
}

// noticeRestart logs, once per restart, a node that came back under a new
// run id: a WARN when it lost its data, saying what that means for the
// leases that were live on it.
func (m *Manager) noticeRestart(n *node, st nodeState) {
	n.mu.Lock()
	last := n.runID
	n.mu.Unlock()
	switch {
	case st.marker == st.runID || (last == "" && st.marker == ""):
		return // the same run, or a node this replica meets for the first time
	case st.empty:
		m.log.Warn("Redis node restarted without its data: leases live on it are gone, "+
			"and their locks may be granted again before their holders stop; fences still rise above every earlier one",
			"node", n.index, "addr", n.addr, "run_id", st.runID, "durable", st.durable)
	default:
		// Also what a Sentinel failover looks like: the promoted replica has
		// its own run id and the data it had copied.
		m.log.Info("Redis node restarted with its data, or a replica took over", "node", n.index, "addr", n.addr, "run_id", st.runID)
	}
}

// nodeState is what decides whether a node may vote.
type nodeState struct {
	runID   string
	marker  string
	uptime  time.Duration
	durable bool // appendonly yes + appendfsync always: a restart loses nothing
	empty   bool // no lockd key at all (and no marker)
}

// readNodeState reads what decides whether a node may vote. A node marked
// with its own run id did not restart: durable and empty do not matter
// then, so it costs one round trip.
func readNodeState(ctx context.Context, c redis.Cmdable) (nodeState, error) {
	st, err := readMarker(ctx, c)
	if err != nil || st.marker == st.runID {
		return st, err
	}
	return st, readRestart(ctx, c, &st)
}

// readMarker reads the node's run id, uptime and marker, in one round
// trip: all a node that did not restart needs.
func readMarker(ctx context.Context, c redis.Cmdable) (nodeState, error) {
	var st nodeState
	var info, marker *redis.StringCmd
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		info = p.Info(ctx, "server")
		marker = p.Get(ctx, markerKey)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return st, err
	}
	f := infoFields(info.Val())
	st.runID, st.marker = f["run_id"], marker.Val()
	s, _ := strconv.Atoi(f["uptime_in_seconds"])
	st.uptime = time.Duration(s) * time.Second
	return st, nil
}

// readRestart adds what a restart needs judged: whether the node is
// durable, and, when unmarked, whether it is empty.
func readRestart(ctx context.Context, c redis.Cmdable, st *nodeState) error {
	// CONFIG may be forbidden to lockd's user: then the node is not known
	// to be durable, which only costs availability.
	if cfg, err := c.ConfigGet(ctx, "append*").Result(); err == nil {
		st.durable = cfg["appendonly"] == "yes" && cfg["appendfsync"] == "always"
	}
	if st.marker == "" {
		keys, _, err := c.Scan(ctx, 0, "lock*", 1000).Result()
		if err != nil {
			return err
		}
		st.empty = len(keys) == 0
	}
	return nil
}

// judge decides from st whether n may vote, records the decision, and
// returns true when n is (now) out.
func (m *Manager) judge(n *node, st nodeState) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case st.marker == st.runID:
		if n.out {
			// Another replica let it in (it re-synced it or found the
			// cluster new) after this one last looked.
			m.log.Info("Redis node back in quorums", "node", n.index, "addr", n.addr)
		}
		n.out = false
		n.runID = st.runID
		return false
	case n.out:
		return true // already waiting; maintenance decides when it ends
	}
	n.out = true
	n.outUntil = time.Now().Add(max(0, m.delay-st.uptime))
	if n.runID != "" && st.empty {
		m.log.Warn("Redis node restarted without its data: leases live on it are gone, so it stays out of quorums "+
			"until every lease it could have held has ended; fences still rise above every earlier one",
			"node", n.index, "addr", n.addr, "until", n.outUntil.Format(time.RFC3339), "durable", st.durable)
		return true
	}
	m.log.Warn("Redis node kept out of quorums after a restart", "node", n.index, "addr", n.addr,
		"until", n.outUntil.Format(time.RFC3339), "durable", st.durable, "empty", st.empty)
	return true
}

// maintain looks at every node that is out: it lets one back in when
// another replica already has, when it turns out durable, when the whole
// cluster is new, or when its delay has passed and its fence counters are
// re-synced from a majority.
func (m *Manager) maintain(ctx context.Context) {
	if len(m.nodes) == 1 {
		return
	}
	ctx = context.WithValue(ctx, maintenanceKey{}, true)
	states := make([]*nodeState, len(m.nodes))
	for i, n := range m.nodes {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := readNodeState(cctx, n.client)
		cancel()
		if err == nil {
			states[i] = &st
			m.judge(n, st)
		}
	}
	// A new cluster: every node reachable, empty, unmarked, never seen
	// marked by this replica, and up for freshUptime, so that the clock
	// floor of its fences (whole seconds in quorum mode) is past every
	// fence given out before, had the nodes all lost their data instead.
	fresh := true
	for i, st := range states {
		n := m.nodes[i]
		n.mu.Lock()
		known := n.runID != ""
		n.mu.Unlock()
		if st == nil || st.marker != "" || !st.empty || known || st.uptime < freshUptime {
			fresh = false
		}
	}
	for i, n := range m.nodes {
		st := states[i]
		if st == nil || !n.isOut() {
			continue
		}
		n.mu.Lock()
		due := !time.Now().Before(n.outUntil)
		n.mu.Unlock()
		switch {
		case fresh, st.durable:
		case due:
			if err := m.resync(ctx, n); err != nil {
				m.log.Warn("Redis node not re-synced yet", "node", n.index, "addr", n.addr, "err", err)
				continue
			}
		default:
			continue
		}
		if err := n.client.Set(ctx, markerKey, st.runID, 0).Err(); err != nil {
			continue
		}
		n.mu.Lock()
		n.out = false
		n.runID = st.runID
		n.mu.Unlock()
		m.log.Info("Redis node back in quorums", "node", n.index, "addr", n.addr)
	}
}

// raiseCounterScript sets a fence counter to at least ARGV[1].
var raiseCounterScript = redis.NewScript(`
local c = tonumber(redis.call("GET", KEYS[1]) or "0")
if c < tonumber(ARGV[1]) then redis.call("SET", KEYS[1], ARGV[1]) end
return 1
`)

// resync raises n's fence counters to the highest value on the nodes in
// quorums, when there are any. Fences do not depend on it: each is floored
// at its node's clock, and a node rejoins only after its keep-out delay
// (at least two seconds), so even with no node to copy from (a majority,
// or every node, lost its data) its fences start above every earlier one.
// Copying keeps the counters together, so candidates agree and acquires
// stay one round.
func (m *Manager) resync(ctx context.Context, n *node) error {
	var sources []*node
	for _, o := range m.nodes {
		if o != n && !o.isOut() {
			sources = append(sources, o)
		}
	}
	for _, src := range sources {
		// The slots' counters, and the names' counters of the old layout.
		for _, pattern := range []string{fenceCounterPrefix + "*", fencePrefix + "*"} {
			if err := copyCounters(ctx, src, n, pattern); err != nil {
				return err
			}
		}
	}
	return nil
}

// copyCounters raises every counter of dst matching pattern to src's value.
func copyCounters(ctx context.Context, src, dst *node, pattern string) error {
	iter := src.client.Scan(ctx, 0, pattern, 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		v, err := src.client.Get(ctx, k).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return err
		}
		if err := raiseCounterScript.Run(ctx, dst.client, []string{k}, v).Err(); err != nil {
			return err
		}
	}
	return iter.Err()
}

func (m *Manager) quorum() int { return len(m.nodes)/2 + 1 }

// reply is one node's answer in fanOut.
type reply[T any] struct {
	node int
	val  T
	err  error
}

// fanOut runs fn on every node in quorums at once, each bounded by
// timeout, and returns once every node has answered or failed. A node that
// is out or slow is not asked, and it and any that fails are left out of
// the answers but counted in errs; since slow nodes are skipped, waiting
// for all costs at most one timeout per node that stops answering.
func fanOut[T any](ctx context.Context, m *Manager, timeout time.Duration,
	fn func(context.Context, *node) (T, error)) (got []reply[T], errs error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ch := make(chan reply[T], len(m.nodes))
	for _, n := range m.nodes {
		go func() {
			if n.isOut() {
				ch <- reply[T]{node: n.index, err: errNodeOut}
				return
			}
			if n.isSlow() {
				ch <- reply[T]{node: n.index, err: errNodeSlow}
				return
			}
			v, err := fn(ctx, n)
			ch <- reply[T]{node: n.index, val: v, err: err}
		}()
	}
	for range m.nodes {
		r := <-ch
		if r.err != nil {
			errs = errors.Join(errs, fmt.Errorf("node #%d: %w", r.node, r.err))
			continue
		}
		got = append(got, r)
	}
	return got, errs
}

func countIf[T any](got []reply[T], ok func(T) bool) int {
	n := 0
	for _, r := range got {
		if ok(r.val) {
			n++
		}
	}
	return n
}

// onEvery runs fn on every usable node at once, each bounded by timeout,
// and returns once every one has answered or failed: a change is then on
// every node lockd counts as healthy before the caller is answered. With
// one node it is a plain call.
func onEvery[T any](ctx context.Context, m *Manager, timeout time.Duration,
	fn func(context.Context, *node) (T, error)) ([]reply[T], error) {
	// Detached: a caller that goes away must not leave a change half made
	// across the nodes, or unknown on one.
	ctx = detached{Context: context.WithoutCancel(ctx), ctx: ctx}
	if len(m.nodes) == 1 {
		n := m.nodes[0]
		v, err := fn(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("node #%d: %w", n.index, err)
		}
		return []reply[T]{{node: n.index, val: v}}, nil
	}
	return fanOut(ctx, m, timeout, fn)
}

// nodeTimeout bounds one call to one node: 10% of the TTL, at least 100 ms
// and at most a second (also when the TTL is not known, 0). redsync's 5%
// and 50 ms floor proved too tight for a loaded machine: a node that
// misses it is skipped until a probe answers, and with one more slow node
// the quorum fails. A lease whose validity ran out meanwhile is refused
// anyway, so a longer bound costs availability, never safety.
func nodeTimeout(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return time.Second
	}
	return min(max(ttl/10, 100*time.Millisecond), time.Second)
}

func newPools(nodes []*node) []redsyncredis.Pool {
	pools := make([]redsyncredis.Pool, len(nodes))
	for i, n := range nodes {
		pools[i] = pool{n: n, inner: goredis.NewPool(n.client)}
	}
	return pools
}

// NodeHealth is one node's answer to a readiness check. Err never holds
// credentials: it is Redis's or the network's message, or why lockd
// refuses the node (its setting, value and fix).
type NodeHealth struct {
	Addr string
	OK   bool
	Err  string
}

// Health asks every node at once for its INFO, each bounded by timeout,
// and reports whether a quorum of them can vote now. A node kept out after
// a restart counts as not ready, with the time it may vote again, and so
// does a node refused for its maxmemory-policy or version (nodecheck.go),
// with the setting and the fix. Each call reads the settings afresh, so a
// policy changed at runtime shows at the next readiness check, and is
// logged then. A node requests skip until a probe answers (slow) counts
// as not ready too.
func (m *Manager) Health(ctx context.Context, timeout time.Duration) (bool, []NodeHealth) {
	if m.cluster != nil {
		return m.clusterHealth(ctx, timeout)
	}
	out := make([]NodeHealth, len(m.nodes))
	var wg sync.WaitGroup
	for i, n := range m.nodes {
		wg.Go(func() {
			h := NodeHealth{Addr: n.addr}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			refused, err := readRefusal(cctx, n.client)
			if err == nil {
				m.noteRefusal(n, refused)
			}
			n.mu.Lock()
			kept, until, slow := n.out, n.outUntil, n.slow
			n.mu.Unlock()
			switch {
			case err != nil:
				h.Err = err.Error()
			case refused != nil:
				h.Err = refused.Error()
			case kept:
				h.Err = "kept out of quorums after a restart, until " + until.UTC().Format(time.RFC3339) + " and a re-sync"
			case slow:
				// It answered this check, but requests skip it until the
				// next probe (every 100 ms) lets it back.
				h.Err = "skipped by requests until a probe answers: a call got no answer"
			default:
				h.OK = true
			}
			out[i] = h
		})
	}
	wg.Wait()
	ok := 0
	for _, h := range out {
		if h.OK {
			ok++
		}
	}
	return ok >= m.quorum(), out
}
