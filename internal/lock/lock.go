package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// Manager takes locks over a fixed set of Redis nodes; with more than one it
// needs a quorum of N/2+1. It keeps no per-lock state, so any number of
// replicas can share the same nodes.
type Manager struct {
	nodes    []*node
	sc       *scriptSet    // the /v1 scripts of the mode
	cluster  *clusterState // set in cluster mode
	minRepl  int           // Config.MinReplicas
	replWait time.Duration // Config.ReplicaTimeout
	rs       *redsync.Redsync
	scripts  []*redsyncredis.Script
	waiters  waitlist
	grants   grantBoard // fair waiters of this replica (queue.go)
	maxTTL   time.Duration
	delay    time.Duration // how long a restarted node stays out of quorums
	log      *slog.Logger
	obs      Observer
	replica  string // named in the events this Manager writes
	keepOld  bool   // write the three-key layout of earlier releases (Config.LegacyKeys)
	expiries *expiries
	tracer   trace.Tracer // for wait spans (Config.TracerProvider)

	maxWaiters  int
	waiting     atomic.Int64 // requests in AcquireWait with a wait
	stopWaiting chan struct{}
	stopOnce    sync.Once
	// closed ends with Close: a blocked events read ends with it, rather
	// than retry on closed connections (a cluster client tries a closed
	// node again, with pauses, for a second or more).
	closed context.Context
	close  context.CancelFunc
}

// Observer hears about lock events, for metrics. kind is what the request
// asked for, "lock" or "semaphore"; results are short fixed words
// ("granted", "locked", "unavailable", "invalid", "canceled",
// "too_many_waiters", "kind_mismatch", "limit_mismatch", "lock_delay",
// "unsupported"; "released", "extended", "current", "stale",
// "not_holder"), never names, tokens or owners.
type Observer interface {
	Acquired(kind, result string, waited time.Duration)
	Released(kind, result string, held time.Duration)
	Extended(kind, result string)
	FenceChecked(kind, result string)
	Waiting(delta int)
}

type noObserver struct{}

func (noObserver) Acquired(string, string, time.Duration) {}
func (noObserver) Released(string, string, time.Duration) {}
func (noObserver) Extended(string, string)                {}
func (noObserver) FenceChecked(string, string)            {}
func (noObserver) Waiting(int)                            {}

// resultOf names an outcome for an Observer; ok is the word for success.
func resultOf(err error, ok ...string) string {
	switch {
	case err == nil:
		if len(ok) > 0 {
			return ok[0]
		}
		return "granted"
	case errors.Is(err, ErrInvalidName), errors.Is(err, ErrInvalidArgument):
		return "invalid"
	case errors.Is(err, ErrLocked):
		return "locked"
	case errors.Is(err, ErrNotHolder):
		return "not_holder"
	case errors.Is(err, ErrStaleFence):
		return "stale"
	case errors.Is(err, ErrTooManyWaiters):
		return "too_many_waiters"
	case errors.Is(err, ErrKindMismatch):
		return "kind_mismatch"
	case errors.Is(err, ErrLimitMismatch):
		return "limit_mismatch"
	case errors.Is(err, ErrLockDelay):
		return "lock_delay"
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	default:
		return "unavailable"
	}
}

// Config describes a Manager's nodes and limits.
type Config struct {
	// Nodes are the independent Redis masters, one each. New sets what the
	// lock needs on top (context deadlines on sockets, no retries).
	// Exactly one of Nodes, Cluster and Sentinel is set.
	Nodes []*redis.Options
	// Cluster, when set, is a Redis Cluster: go-redis routes each name to
	// the master of its slot, and locks scale with the shards.
	Cluster *redis.ClusterOptions
	// Sentinel, when set, is a Sentinel-managed master: go-redis follows
	// it across failovers.
	Sentinel *redis.FailoverOptions
	// MinReplicas, in cluster and Sentinel mode, is how many replicas must
	// acknowledge each grant and extend (Redis's WAIT) within
	// ReplicaTimeout (default 500 ms) before it is answered; 0 sends no
	// WAIT.
	MinReplicas    int
	ReplicaTimeout time.Duration
	// MaxTTL is the longest lease TryAcquire grants (default and ceiling:
	// MaxTTL). In quorum mode it is also how long a node that restarted
	// without appendfsync always stays out of quorums, so every demo lease
	// must be shorter too.
	MaxTTL time.Duration
	// Logger receives node events (default slog.Default()).
	Logger *slog.Logger
	// Observer hears about lock events (default: nobody).
	Observer Observer
	// NodeHook, when set, is added to each node's client, e.g. to time
	// every Redis command per node. node labels the node: its index in
	// Nodes ("0" with one node or Sentinel), or in cluster mode the
	// host:port of each cluster node, so the label stays bounded.
	NodeHook func(node string) redis.Hook
	// MaxWaiters caps the requests waiting at once on this Manager
	// (default 1000).
	MaxWaiters int
	// Replica names this process in the events it writes.
	Replica string
	// LegacyKeys makes grants use the three-key layout of earlier releases (the lock key
	// holds the bare token, lockmeta:NAME the grant and lockfence:NAME the
	// name's counter), so that older replicas running beside this one in
	// a rolling upgrade can extend and release them and keep fences
	// rising. Off, grants of the old layout are still read, and a name's
	// old counter is honoured once and then deleted.
	LegacyKeys bool
	// TracerProvider, when set, receives a span for each wait and, as
	// children of the caller's spans, one for each Redis command, named by
	// the command alone (trace.go). Unset: no spans.
	TracerProvider trace.TracerProvider
}

// New returns a Manager over cfg.Nodes. Close it when done.
func New(cfg Config) *Manager {
	m := &Manager{scripts: redsyncScripts(), maxTTL: cfg.MaxTTL, log: cfg.Logger, obs: cfg.Observer,
		maxWaiters: cfg.MaxWaiters, stopWaiting: make(chan struct{}),
		replica: cfg.Replica, keepOld: cfg.LegacyKeys, expiries: newExpiries(),
		tracer: tracerOf(cfg.TracerProvider)}
	m.closed, m.close = context.WithCancel(context.Background())
	if m.obs == nil {
		m.obs = noObserver{}
	}
	if m.maxWaiters <= 0 {
		m.maxWaiters = 1000
	}
	if m.maxTTL <= 0 || m.maxTTL > MaxTTL {
		m.maxTTL = MaxTTL
	}
	// The delay covers the longest lease plus redsync's drift margin.
	m.delay = m.maxTTL + m.maxTTL/100 + time.Second
	if m.log == nil {
		m.log = slog.Default()
	}
	m.sc, m.minRepl, m.replWait = plainScripts, cfg.MinReplicas, cfg.ReplicaTimeout
	if m.replWait <= 0 {
		m.replWait = defaultReplicaTimeout
	}
	var minRead time.Duration // room for a WAIT (evalAcked)
	if m.minRepl > 0 {
		minRead = m.replWait + nodeIOTimeout/2
	}
	switch {
	case cfg.Cluster != nil:
		m.sc, m.keepOld = clusterScripts, false // set before onConnect reads it
		n, c := newClusterNode(cfg.Cluster, minRead, m.onConnect)
		m.cluster = &clusterState{client: c}
		m.addNode(n, cfg)
	case cfg.Sentinel != nil:
		m.addNode(newSentinelNode(cfg.Sentinel, minRead, m.onConnect), cfg)
	default:
		for i, o := range cfg.Nodes {
			m.addNode(newNode(i, o, minRead, m.onConnect), cfg)
		}
	}
	m.rs = redsync.New(newPools(m.nodes)...)
	return m
}

// waitsReplicas reports whether grants and extends wait for replicas
// (Config.MinReplicas): with one node or a cluster, never in quorum mode,
// whose nodes are independent masters.
func (m *Manager) waitsReplicas() bool { return m.minRepl > 0 && len(m.nodes) == 1 }

// defaultReplicaTimeout is Config.ReplicaTimeout's default.
const defaultReplicaTimeout = 500 * time.Millisecond

// addNode adds n, with the hooks every node has.
func (m *Manager) addNode(n *node, cfg Config) {
	n.index = len(m.nodes)
	// Demo requests ask for the commands they issued (CommandLog).
	n.client.AddHook(commandLogHook{})
	if len(cfg.Nodes) > 1 {
		// With one node there is nobody to skip to: it is always used.
		n.client.AddHook(healthHook{n: n, log: m.log})
	}
	switch c := n.client.(type) {
	case *redis.ClusterClient:
		if cfg.NodeHook != nil {
			// On go-redis's client of each cluster node: a shard's share of
			// the work shows under its own address.
			c.OnNewNode(func(rdb *redis.Client) { rdb.AddHook(cfg.NodeHook(rdb.Options().Addr)) })
		}
	default:
		if cfg.NodeHook != nil {
			n.client.AddHook(cfg.NodeHook(strconv.Itoa(n.index)))
		}
	}
	if cfg.TracerProvider != nil {
		traceRedis(n.client, cfg.TracerProvider)
	}
	m.nodes = append(m.nodes, n)
}

// Close closes the connections to every node.
func (m *Manager) Close() error {
	m.close()
	var err error
	for _, n := range m.nodes {
		err = errors.Join(err, n.client.Close(), n.events.Close())
	}
	return err
}

// Prepare loads the /v1 scripts and redsync's release and extend scripts
// into every node with SCRIPT LOAD (every new connection loads them again,
// so a restarted Redis has them before its first call), so that even the
// first release on a fresh Redis is a plain EVALSHA rather than a NOSCRIPT
// answer followed by EVAL, and in quorum mode decides which nodes may
// vote. It also checks each node's maxmemory-policy and version
// (nodecheck.go), logging an error for a node that can lose locks by
// design or cannot run the scripts: such a node does not count as
// ready. It returns ErrUnavailable when fewer than a quorum of nodes can
// be reached and are fit for locks.
func (m *Manager) Prepare(ctx context.Context) error {
	m.maintain(ctx)
	ctx = context.WithValue(ctx, maintenanceKey{}, true)
	if m.cluster != nil {
		return m.prepareCluster(ctx)
	}
	if len(m.nodes) == 1 {
		// Marked from the start, so that a restart is told apart from a
		// first meeting, and the marker is there before any lock.
		if err := m.markSingle(ctx, m.nodes[0], m.nodes[0].client); err != nil {
			return &kindError{ErrUnavailable, fmt.Errorf("node #0: %w", err)}
		}
	}
	var errs error
	ready := 0
	for _, n := range m.nodes {
		err := m.loadScripts(ctx, n)
		if err != nil && !errors.Is(err, ErrUnavailable) {
			return err
		}
		if err == nil {
			if err = m.checkNode(ctx, n); err != nil {
				err = &kindError{ErrUnavailable, fmt.Errorf("node #%d (%s): %w", n.index, n.addr, err)}
			}
		}
		if err == nil {
			ready++
		}
		errs = errors.Join(errs, err)
	}
	if ready < m.quorum() {
		return errs
	}
	return nil
}

func (m *Manager) loadScripts(ctx context.Context, n *node) error {
	for _, src := range m.sc.sources {
		if err := n.client.ScriptLoad(ctx, src).Err(); err != nil {
			return &kindError{ErrUnavailable, fmt.Errorf("node #%d: script load: %w", n.index, err)}
		}
	}
	for _, s := range m.scripts {
		sha, err := n.client.ScriptLoad(ctx, s.Src).Result()
		if err != nil {
			return &kindError{ErrUnavailable, fmt.Errorf("node #%d: script load: %w", n.index, err)}
		}
		if sha != s.Hash {
			return fmt.Errorf("lock: node #%d hashed a script to %s, redsync expects %s", n.index, sha, s.Hash)
		}
	}
	return nil
}
