package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redsync/redsync/v4"
	redsyncredis "github.com/go-redsync/redsync/v4/redis"
	"github.com/redis/go-redis/v9"
)

// KeyPrefix is put before a lock's name to form its Redis key.
const KeyPrefix = "lock:"

// Sentinel errors. Errors returned by this package match one of them with
// errors.Is while keeping the underlying message (the demo shows redsync's
// own text, "lock already taken, locked nodes: [0]").
var (
	ErrLocked      = errors.New("lock: already held")
	ErrNotHolder   = errors.New("lock: not the holder")
	ErrInvalidName = errors.New("lock: invalid name")
	// ErrInvalidArgument is a TTL, wait, owner, token or fence out of bounds.
	ErrInvalidArgument = errors.New("lock: invalid argument")
	ErrStaleFence      = errors.New("lock: stale fence")
	ErrUnavailable     = errors.New("lock: redis unavailable")
	// ErrTooManyWaiters refuses a wait while the replica has its maximum
	// of waiting requests (Config.MaxWaiters).
	ErrTooManyWaiters = errors.New("lock: too many waiting requests")
	ErrLost           = errors.New("lock: lease lost")
)

// Lease is a granted lock. Token is the secret that proves ownership; it
// must never be logged.
type Lease struct {
	Name  string
	Token string
	// TTL is the expiry set on the key at each acquire or extend.
	TTL time.Duration
	// Until is the end of the lease's validity as redsync computes it: the
	// expiry minus the time the request took and a clock-drift margin. Work
	// under the lock must end before it.
	Until time.Time
	// Fence and Owner are set on leases granted by TryAcquire: Fence is
	// strictly increasing per name across grants.
	Fence int64
	Owner string
}

// Manager takes locks over a fixed set of Redis nodes; with more than one it
// needs a quorum of N/2+1. It keeps no per-lock state, so any number of
// replicas can share the same nodes.
type Manager struct {
	nodes    []*node
	rs       *redsync.Redsync
	scripts  []*redsyncredis.Script
	waiters  waitlist
	maxTTL   time.Duration
	delay    time.Duration // how long a restarted node stays out of quorums
	log      *slog.Logger
	obs      Observer
	replica  string // named in the events this Manager writes
	keepOld  bool   // write the layout before 0.3 (Config.LegacyKeys)
	expiries *expiries

	maxWaiters  int
	waiting     atomic.Int64 // requests in AcquireWait with a wait
	stopWaiting chan struct{}
	stopOnce    sync.Once
}

// Observer hears about lock events, for metrics. Results are short fixed
// words ("granted", "locked", "unavailable", "invalid", "canceled",
// "too_many_waiters"; "released", "extended", "current", "stale",
// "not_holder"), never names, tokens or owners.
type Observer interface {
	Acquired(result string, waited time.Duration)
	Released(result string, held time.Duration)
	Extended(result string)
	FenceChecked(result string)
	Waiting(delta int)
}

type noObserver struct{}

func (noObserver) Acquired(string, time.Duration) {}
func (noObserver) Released(string, time.Duration) {}
func (noObserver) Extended(string)                {}
func (noObserver) FenceChecked(string)            {}
func (noObserver) Waiting(int)                    {}

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
	Nodes []*redis.Options
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
	// every Redis command per node.
	NodeHook func(node int) redis.Hook
	// MaxWaiters caps the requests waiting at once on this Manager
	// (default 1000).
	MaxWaiters int
	// Replica names this process in the events it writes.
	Replica string
	// LegacyKeys makes grants use the key layout before 0.3 (the lock key
	// holds the bare token, lockmeta:NAME the grant and lockfence:NAME the
	// name's counter), so that older replicas running beside this one in
	// a rolling upgrade can extend and release them and keep fences
	// rising. Off, grants of the old layout are still read, and a name's
	// old counter is honoured once and then deleted.
	LegacyKeys bool
}

// New returns a Manager over cfg.Nodes. Close it when done.
func New(cfg Config) *Manager {
	m := &Manager{scripts: redsyncScripts(), maxTTL: cfg.MaxTTL, log: cfg.Logger, obs: cfg.Observer,
		maxWaiters: cfg.MaxWaiters, stopWaiting: make(chan struct{}),
		replica: cfg.Replica, keepOld: cfg.LegacyKeys, expiries: newExpiries()}
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
	for i, o := range cfg.Nodes {
		n := newNode(i, o)
		// Demo requests ask for the commands they issued (CommandLog).
		n.client.AddHook(commandLogHook{})
		n.client.Options().OnConnect = m.onConnect(n)
		if len(cfg.Nodes) > 1 {
			// With one node there is nobody to skip to: it is always used.
			n.client.AddHook(healthHook{n: n, log: m.log})
		}
		if cfg.NodeHook != nil {
			n.client.AddHook(cfg.NodeHook(i))
		}
		m.nodes = append(m.nodes, n)
	}
	m.rs = redsync.New(newPools(m.nodes)...)
	return m
}

// Close closes the connections to every node.
func (m *Manager) Close() error {
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
// vote. It returns ErrUnavailable when fewer than a
// quorum of nodes can be reached.
func (m *Manager) Prepare(ctx context.Context) error {
	m.maintain(ctx)
	ctx = context.WithValue(ctx, maintenanceKey{}, true)
	var errs error
	ready := 0
	for _, n := range m.nodes {
		err := m.loadScripts(ctx, n)
		if err != nil && !errors.Is(err, ErrUnavailable) {
			return err
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
	for _, src := range scriptSources {
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

// Acquire takes the lock name for ttl, retrying with redsync's defaults (32
// tries, 50–250 ms apart, about 4–5 s in all) while another holder has it.
// It returns ErrInvalidName, ErrLocked when the tries run out, ErrUnavailable
// when Redis cannot be reached, or ctx's error when ctx ends first.
func (m *Manager) Acquire(ctx context.Context, name string, ttl time.Duration) (Lease, error) {
	if err := ValidateName(name); err != nil {
		return Lease{}, err
	}
	mu := m.rs.NewMutex(KeyPrefix+name, redsync.WithExpiry(ttl))
	if err := mu.LockContext(ctx); err != nil {
		// redsync answers ErrFailed for a done context too, so look first.
		if ctx.Err() != nil {
			return Lease{}, ctx.Err()
		}
		return Lease{}, translate(err, ErrLocked)
	}
	return Lease{Name: name, Token: mu.Value(), TTL: ttl, Until: mu.Until()}, nil
}

// Extend resets the lease's expiry to its TTL. It returns the lease with its
// new validity, ErrNotHolder when the key is gone or holds another token (or
// the validity ran out during the call), or ErrUnavailable. A fenced lease
// (from TryAcquire) is extended with Renew's script, a demo lease with
// redsync.
func (m *Manager) Extend(ctx context.Context, l Lease) (Lease, error) {
	if l.Fence > 0 {
		return m.Renew(ctx, l.Name, l.Token, l.TTL)
	}
	ctx, cancel := context.WithTimeout(ctx, nodeTimeout(l.TTL))
	defer cancel()
	mu := m.mutex(l)
	ok, err := mu.ExtendContext(ctx)
	if !ok {
		if err == nil {
			err = redsync.ErrExtendFailed
		}
		return l, translate(err, ErrNotHolder)
	}
	l.Until = mu.Until()
	return l, nil
}

// Release deletes the lock if it still holds the lease's token. It returns
// ErrNotHolder when the key is gone or holds another token, or
// ErrUnavailable. A fenced lease (from TryAcquire) is released as
// ReleaseToken does, a demo lease with redsync.
func (m *Manager) Release(ctx context.Context, l Lease) error {
	if l.Fence > 0 {
		return m.ReleaseToken(ctx, l.Name, l.Token)
	}
	ctx, cancel := context.WithTimeout(ctx, nodeTimeout(l.TTL))
	defer cancel()
	ok, err := m.mutex(l).UnlockContext(ctx)
	if !ok {
		if err == nil {
			err = redsync.ErrFailed
		}
		return translate(err, ErrNotHolder)
	}
	return nil
}

// mutex rebuilds a redsync mutex for an existing lease: redsync mutexes are
// stateful, so each call gets its own.
func (m *Manager) mutex(l Lease) *redsync.Mutex {
	return m.rs.NewMutex(KeyPrefix+l.Name, redsync.WithExpiry(l.TTL), redsync.WithValue(l.Token))
}

// translate turns a redsync failure into one of our kinds. A Redis error
// anywhere in it means we could not learn the answer, which is not the same
// as being refused.
func translate(err error, refused error) error {
	var re *redsync.RedisError
	if errors.As(err, &re) {
		return &kindError{ErrUnavailable, err}
	}
	return &kindError{refused, err}
}

// kindError matches kind with errors.Is but prints cause's message.
type kindError struct{ kind, cause error }

func (e *kindError) Error() string   { return e.cause.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }
