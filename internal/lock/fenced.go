package lock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/redis/go-redis/v9"
)

// Keys beside a lock's "lock:NAME". Their prefixes differ from "lock:" before
// the name starts, so no lock name, however it is spelt, can reach them:
// "lock:foo:fence" is just the lock named "foo:fence".
const (
	metaPrefix  = "lockmeta:"  // hash: token, owner, fence, ttl_ms, at (grant time, ms) of the live grant
	fencePrefix = "lockfence:" // counter: the last fence handed out for a name
)

// metaTTL is how long a grant's metadata outlives its last acquire or extend.
// Stale metadata is harmless (it is only read when its token matches the
// lock key), so this only bounds memory.
const metaTTL = 2 * time.Hour

// fenceScript runs right after redsync's SET NX. It acts only while the key
// still holds this grant's token, so a holder that has already lost its lease
// can never obtain a fence; the counter is incremented in the same atomic step.
var fenceScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
local fence = redis.call("INCR", KEYS[3])
redis.call("HSET", KEYS[2], "token", ARGV[1], "owner", ARGV[2], "fence", fence, "ttl_ms", ARGV[3], "at", ARGV[5])
redis.call("PEXPIRE", KEYS[2], ARGV[4])
return fence
`)

// fenceReadScript answers, on one node of a quorum, the fence counter plus
// one if the key holds this grant's token, or -1.
var fenceReadScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return -1 end
return tonumber(redis.call("GET", KEYS[3]) or "0") + 1
`)

// fenceWriteScript raises the counter to the chosen fence and records the
// grant, on one node of a quorum, only if the key holds this grant's token.
var fenceWriteScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
local fence = tonumber(ARGV[2])
if tonumber(redis.call("GET", KEYS[3]) or "0") < fence then redis.call("SET", KEYS[3], fence) end
redis.call("HSET", KEYS[2], "token", ARGV[1], "owner", ARGV[3], "fence", fence, "ttl_ms", ARGV[4], "at", ARGV[6])
redis.call("PEXPIRE", KEYS[2], ARGV[5])
return 1
`)

// grantScript returns the live grant's metadata for the holder of token and
// refreshes its lifetime, or false when token does not hold the lock.
var grantScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return false end
local m = redis.call("HMGET", KEYS[2], "token", "owner", "fence", "ttl_ms")
if m[1] ~= ARGV[1] then return {"", 0, 0} end
redis.call("PEXPIRE", KEYS[2], ARGV[2])
return {m[2], tonumber(m[3]), tonumber(m[4])}
`)

// inspectScript reads a lock in one step: whether it is held, by which grant
// (owner and fence, or "" and 0 for a lock taken without them, such as the
// demo's), its remaining time to live in milliseconds, and the key's value
// (so that nodes holding the same grant can be told apart from others; it
// never leaves the package).
var inspectScript = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if not v then return {0, "", 0, 0, ""} end
local pttl = redis.call("PTTL", KEYS[1])
local m = redis.call("HMGET", KEYS[2], "token", "owner", "fence")
if m[1] ~= v then return {1, "", 0, pttl, v} end
return {1, m[2], tonumber(m[3]), pttl, v}
`)

// Holder describes who holds a lock. It never carries the token.
type Holder struct {
	Owner string
	Fence int64
	TTL   time.Duration // time left before the key expires
}

// LockedError is returned when a lock is held by someone else. It matches
// ErrLocked with errors.Is and says who holds it and for how long.
type LockedError struct{ Holder Holder }

func (e *LockedError) Error() string {
	return fmt.Sprintf("lock: already held (owner %q, fence %d, %v left)", e.Holder.Owner, e.Holder.Fence, e.Holder.TTL.Round(100*time.Millisecond))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Grant asks for a fenced lease.
type Grant struct {
	TTL   time.Duration
	Owner string // free text shown to others; not a secret
}

func (m *Manager) validateGrant(g Grant) error {
	if err := m.validateTTL(g.TTL); err != nil {
		return err
	}
	return validateOwner(g.Owner)
}

// TryAcquire makes one attempt at name, which must pass ValidateStrictName.
// On success the lease carries a fence, strictly greater than every fence
// granted for name before, and a token of 144 random bits in URL-safe
// base64. It returns ErrInvalidName, ErrInvalidArgument (a TTL outside
// MinTTL to the configured maximum, an owner too long or unprintable), a
// *LockedError, or
// ErrUnavailable.
func (m *Manager) TryAcquire(ctx context.Context, name string, g Grant) (Lease, error) {
	if err := ValidateStrictName(name); err != nil {
		return Lease{}, err
	}
	if err := m.validateGrant(g); err != nil {
		return Lease{}, err
	}
	mu := m.rs.NewMutex(KeyPrefix+name, redsync.WithExpiry(g.TTL), redsync.WithTries(1),
		redsync.WithGenValueFunc(newToken))
	if err := mu.TryLockContext(ctx); err != nil {
		if ctx.Err() != nil {
			return Lease{}, ctx.Err()
		}
		if err = translate(err, ErrLocked); errors.Is(err, ErrUnavailable) {
			return Lease{}, err
		}
		return Lease{}, m.locked(ctx, name)
	}
	l := Lease{Name: name, Token: mu.Value(), TTL: g.TTL, Until: mu.Until(), Owner: g.Owner}
	fence, err := m.assignFence(ctx, l)
	if err == nil && !time.Now().Before(l.Until) {
		err = &kindError{ErrUnavailable, errors.New("lock: the lease's validity ran out while its fence was assigned")}
	}
	if err != nil || fence == 0 {
		// Without a fence the grant is unusable: give the lock back rather
		// than leave it held for its whole TTL.
		_ = m.Release(context.WithoutCancel(ctx), l)
		if err != nil {
			return Lease{}, err
		}
		return Lease{}, m.locked(ctx, name) // lost between SET NX and the script
	}
	l.Fence = fence
	return l, nil
}

// assignFence gives a fresh grant its fence, or 0 when the grant has
// already lost its key. On one node a single script increments the counter.
// With several, a maximum over per-node counters would not do (two grants'
// quorums share a node, but the maximum may come from another one), so it
// reads the counters on a majority, takes the highest plus one and writes
// that back to a majority before answering: any later grant's read
// majority meets this write majority in at least one node. Every step acts
// only where the node's key holds this grant's token.
func (m *Manager) assignFence(ctx context.Context, l Lease) (int64, error) {
	keys := m.keys(l.Name)
	if len(m.nodes) == 1 {
		fence, err := fenceScript.Run(ctx, m.nodes[0].client, keys,
			l.Token, l.Owner, l.TTL.Milliseconds(), metaTTL.Milliseconds(), time.Now().UnixMilli()).Int64()
		if err != nil {
			return 0, &kindError{ErrUnavailable, fmt.Errorf("lock: assign fence: %w", err)}
		}
		return fence, nil
	}
	q, timeout := m.quorum(), nodeTimeout(l.TTL)
	held := func(got []reply[int64]) bool { return countIf(got, func(v int64) bool { return v > 0 }) >= q }

	read, errs := fanOut(ctx, m, timeout, func(ctx context.Context, n *node) (int64, error) {
		// -1: the key is not ours here; otherwise the counter plus one, so
		// that 0 never means "ours".
		return fenceReadScript.Run(ctx, n.client, keys, l.Token).Int64()
	}, held)
	if !held(read) {
		return 0, m.quorumFailed("read fences", read, errs)
	}
	var fence int64
	for _, r := range read {
		fence = max(fence, r.val) // the highest counter, plus one
	}

	wrote, errs := fanOut(ctx, m, timeout, func(ctx context.Context, n *node) (int64, error) {
		return fenceWriteScript.Run(ctx, n.client, keys,
			l.Token, fence, l.Owner, l.TTL.Milliseconds(), metaTTL.Milliseconds(), time.Now().UnixMilli()).Int64()
	}, held)
	if !held(wrote) {
		return 0, m.quorumFailed("write fences", wrote, errs)
	}
	return fence, nil
}

// quorumFailed says why a quorum step failed: the key was lost (0 fence,
// the caller reports the lock as taken) or nodes could not answer.
func (m *Manager) quorumFailed(step string, got []reply[int64], errs error) error {
	if errs == nil || len(got) >= m.quorum() {
		return nil // enough answers, but the key is no longer ours on a majority
	}
	return &kindError{ErrUnavailable, fmt.Errorf("lock: %s on a quorum: %w", step, errs)}
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

// locked builds the *LockedError for a refused acquire, or ErrUnavailable
// if Redis cannot say who holds it.
func (m *Manager) locked(ctx context.Context, name string) error {
	h, held, err := m.Inspect(ctx, name)
	if err != nil {
		return err
	}
	if !held { // released in between: still a refusal of this attempt
		return &LockedError{}
	}
	return &LockedError{Holder: h}
}

// inspectTimeout bounds each node's answer to Inspect.
const inspectTimeout = 500 * time.Millisecond

// inspected is one node's view of a lock.
type inspected struct {
	value string // the key's value, to group nodes that agree; never shown
	h     Holder
}

// Inspect reports whether name is held and by whom: held means a quorum of
// nodes hold the same grant. It returns ErrInvalidName, or ErrUnavailable
// when too few nodes answer to tell.
func (m *Manager) Inspect(ctx context.Context, name string) (Holder, bool, error) {
	if err := ValidateStrictName(name); err != nil {
		return Holder{}, false, err
	}
	q := m.quorum()
	// decided: one grant is on a quorum, or none can reach one any more.
	decided := func(got []reply[inspected]) bool {
		best := 0
		for _, r := range got {
			if r.val.value != "" {
				best = max(best, countIf(got, func(v inspected) bool { return v.value == r.val.value }))
			}
		}
		return best >= q || best+len(m.nodes)-len(got) < q
	}
	got, errs := fanOut(ctx, m, inspectTimeout, func(ctx context.Context, n *node) (inspected, error) {
		res, err := inspectScript.Run(ctx, n.client, m.keys(name)[:2]).Slice()
		if err != nil {
			return inspected{}, err
		}
		return inspectedFrom(res)
	}, decided)
	if !decided(got) {
		return Holder{}, false, &kindError{ErrUnavailable, fmt.Errorf("lock: inspect: %w", errs)}
	}
	for _, r := range got {
		v := r.val.value
		agree := countIf(got, func(o inspected) bool { return o.value == v })
		if v == "" || agree < q {
			continue
		}
		// The grant's fence and owner are on its write majority, maybe
		// not on every node that holds its key; its time left is the
		// shortest any node gives.
		h := r.val.h
		for _, o := range got {
			if o.val.value == v {
				h.TTL = min(h.TTL, o.val.h.TTL)
				if o.val.h.Fence > h.Fence {
					h.Fence, h.Owner = o.val.h.Fence, o.val.h.Owner
				}
			}
		}
		return h, true, nil
	}
	return Holder{}, false, nil
}

// inspectedFrom reads inspectScript's reply. A key without an expiry
// (written by something else) shows a TTL of 0.
func inspectedFrom(res []any) (inspected, error) {
	if len(res) != 5 {
		return inspected{}, fmt.Errorf("lock: inspect: unexpected reply %v", res)
	}
	held, _ := res[0].(int64)
	owner, _ := res[1].(string)
	fence, _ := res[2].(int64)
	pttl, _ := res[3].(int64)
	value, _ := res[4].(string)
	if held != 1 {
		return inspected{}, nil
	}
	return inspected{value: value, h: Holder{Owner: owner, Fence: fence, TTL: time.Duration(max(pttl, 0)) * time.Millisecond}}, nil
}

// Renew extends a fenced lease from its token alone, as a client that kept
// only the token can: ttl 0 means the TTL given at acquire. It returns the
// lease with its new validity, ErrInvalidName, ErrInvalidArgument,
// ErrNotHolder, or ErrUnavailable.
func (m *Manager) Renew(ctx context.Context, name, token string, ttl time.Duration) (l Lease, err error) {
	defer func() { m.obs.Extended(resultOf(err, "extended")) }()
	if err := ValidateStrictName(name); err != nil {
		return Lease{}, err
	}
	if err := validateToken(token); err != nil {
		return Lease{}, err
	}
	if ttl != 0 {
		if err := m.validateTTL(ttl); err != nil {
			return Lease{}, err
		}
	}
	// The grant's owner, fence and TTL are on a majority of nodes; the
	// first node that has them answers for all.
	type grant struct {
		owner        string
		fence, ttlMS int64
		ours         bool // the key holds token here
	}
	found := func(got []reply[grant]) bool { return countIf(got, func(g grant) bool { return g.ttlMS > 0 }) > 0 }
	got, errs := fanOut(ctx, m, nodeTimeout(ttl), func(ctx context.Context, n *node) (grant, error) {
		res, err := grantScript.Run(ctx, n.client, m.keys(name)[:2], token, metaTTL.Milliseconds()).Slice()
		if errors.Is(err, redis.Nil) {
			return grant{}, nil
		}
		if err != nil || len(res) != 3 {
			return grant{}, fmt.Errorf("read grant: %w (reply %v)", err, res)
		}
		owner, _ := res[0].(string)
		fence, _ := res[1].(int64)
		ttlMS, _ := res[2].(int64)
		return grant{owner: owner, fence: fence, ttlMS: ttlMS, ours: true}, nil
	}, found)
	var g grant
	for _, r := range got {
		if r.val.ttlMS > 0 || (r.val.ours && !g.ours) {
			g = r.val
		}
	}
	switch {
	case len(got) == 0:
		return Lease{}, &kindError{ErrUnavailable, fmt.Errorf("lock: read grant: %w", errs)}
	case !g.ours:
		return Lease{}, &kindError{ErrNotHolder, errors.New("lock: token does not hold the lock")}
	case g.ttlMS <= 0:
		return Lease{}, &kindError{ErrNotHolder, errors.New("lock: held without a grant; use the API that took it")}
	}
	if ttl == 0 {
		ttl = time.Duration(g.ttlMS) * time.Millisecond
	}
	return m.Extend(ctx, Lease{Name: name, Token: token, TTL: ttl, Owner: g.owner, Fence: g.fence})
}

func (m *Manager) keys(name string) []string {
	return []string{KeyPrefix + name, metaPrefix + name, fencePrefix + name}
}

// ReleaseToken releases name for the holder of token, from any replica, and
// announces the release on ReleasedChannel so that waiters on every replica
// wake at once. It returns ErrInvalidName, ErrInvalidArgument,
// ErrNotHolder or ErrUnavailable. (The demo's Release does not announce: its
// Redis trace is the README's.)
func (m *Manager) ReleaseToken(ctx context.Context, name, token string) error {
	_, err := m.ReleaseGrant(ctx, name, token)
	return err
}

// ReleaseGrant is ReleaseToken that also says which grant it released: its
// owner and fence, as recorded when it was granted (zero when that record
// could not be read; the release happens regardless). It returns
// ReleaseToken's errors.
func (m *Manager) ReleaseGrant(ctx context.Context, name, token string) (h Holder, err error) {
	var held time.Duration
	defer func() { m.obs.Released(resultOf(err, "released"), held) }()
	if err := ValidateStrictName(name); err != nil {
		return Holder{}, err
	}
	if err := validateToken(token); err != nil {
		return Holder{}, err
	}
	held, h = m.grantOf(ctx, name, token)
	if err := m.Release(ctx, Lease{Name: name, Token: token}); err != nil {
		return Holder{}, err
	}
	// Best effort: a lost message only delays waiters until their timer
	// for the holder's TTL.
	_, _ = fanOut(ctx, m, inspectTimeout, func(ctx context.Context, n *node) (int64, error) {
		return n.client.Publish(ctx, ReleasedChannel, name).Result()
	}, func(got []reply[int64]) bool { return len(got) > 0 }) // every replica listens on every node
	return h, nil
}

// grantOf is how long the grant of token has been held, and its owner and
// fence, from its metadata on the first node in quorums, or zeros when that
// cannot be told. It only feeds metrics and events, so it never fails the
// release.
func (m *Manager) grantOf(ctx context.Context, name, token string) (time.Duration, Holder) {
	n := m.listNode()
	if n == nil {
		return 0, Holder{}
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	v, err := n.client.HMGet(ctx, metaPrefix+name, "token", "at", "owner", "fence").Result()
	if err != nil || len(v) != 4 || v[0] != token {
		return 0, Holder{}
	}
	at, _ := v[1].(string)
	owner, _ := v[2].(string)
	fs, _ := v[3].(string)
	fence, _ := strconv.ParseInt(fs, 10, 64)
	h := Holder{Owner: owner, Fence: fence}
	ms, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return 0, h
	}
	return time.Since(time.UnixMilli(ms)), h
}

// StaleFenceError answers a fence check that failed. It matches
// ErrStaleFence with errors.Is and carries the live holder's fence: 0 when
// the lock is free or held without a fence.
type StaleFenceError struct{ Current int64 }

func (e *StaleFenceError) Error() string {
	return fmt.Sprintf("lock: fence is not the live holder's (current fence %d)", e.Current)
}

// Is makes errors.Is(err, ErrStaleFence) true.
func (e *StaleFenceError) Is(target error) bool { return target == ErrStaleFence }

// Check says whether fence belongs to the live holder of name, for a
// resource that cannot keep the highest fence itself. The answer is only
// true at the moment Redis gives it. It returns nil when fence is current,
// a *StaleFenceError, ErrInvalidName, ErrInvalidArgument (fence below 1) or
// ErrUnavailable.
func (m *Manager) Check(ctx context.Context, name string, fence int64) (err error) {
	defer func() { m.obs.FenceChecked(resultOf(err, "current")) }()
	if err := ValidateStrictName(name); err != nil {
		return err
	}
	if fence < 1 {
		return invalid("fence %d is not a granted fence; fences start at 1", fence)
	}
	h, held, err := m.Inspect(ctx, name)
	if err != nil {
		return err
	}
	if held && h.Fence == fence {
		return nil
	}
	if !held {
		h.Fence = 0
	}
	return &StaleFenceError{Current: h.Fence}
}
