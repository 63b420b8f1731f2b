package lock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/redis/go-redis/v9"
)

// Keys beside a lock's "lock:NAME". Their prefixes differ from "lock:" before
// the name starts, so no lock name, however it is spelt, can reach them:
// "lock:foo:fence" is just the lock named "foo:fence".
const (
	metaPrefix  = "lockmeta:"  // hash: token, owner, fence, ttl_ms of the live grant
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
redis.call("HSET", KEYS[2], "token", ARGV[1], "owner", ARGV[2], "fence", fence, "ttl_ms", ARGV[3])
redis.call("PEXPIRE", KEYS[2], ARGV[4])
return fence
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
// demo's), and its remaining time to live in milliseconds.
var inspectScript = redis.NewScript(`
local v = redis.call("GET", KEYS[1])
if not v then return {0, "", 0, 0} end
local pttl = redis.call("PTTL", KEYS[1])
local m = redis.call("HMGET", KEYS[2], "token", "owner", "fence")
if m[1] ~= v then return {1, "", 0, pttl} end
return {1, m[2], tonumber(m[3]), pttl}
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

func (g Grant) validate() error {
	if err := validateTTL(g.TTL); err != nil {
		return err
	}
	return validateOwner(g.Owner)
}

// TryAcquire makes one attempt at name, which must pass ValidateStrictName.
// On success the lease carries a fence, strictly greater than every fence
// granted for name before, and a token of 144 random bits in URL-safe
// base64. It returns ErrInvalidName, ErrInvalidArgument (a TTL outside
// MinTTL–MaxTTL, an owner too long or unprintable), a *LockedError, or
// ErrUnavailable.
func (m *Manager) TryAcquire(ctx context.Context, name string, g Grant) (Lease, error) {
	if err := ValidateStrictName(name); err != nil {
		return Lease{}, err
	}
	if err := g.validate(); err != nil {
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
	fence, err := fenceScript.Run(ctx, m.clients[0], m.keys(name),
		l.Token, g.Owner, g.TTL.Milliseconds(), metaTTL.Milliseconds()).Int64()
	if err != nil || fence == 0 {
		// Without a fence the grant is unusable: give the lock back rather
		// than leave it held for its whole TTL.
		_ = m.Release(context.WithoutCancel(ctx), l)
		if err != nil {
			return Lease{}, &kindError{ErrUnavailable, fmt.Errorf("lock: assign fence: %w", err)}
		}
		return Lease{}, m.locked(ctx, name) // lost between SET NX and the script
	}
	l.Fence = fence
	return l, nil
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

// Inspect reports whether name is held and by whom. It returns
// ErrInvalidName, or ErrUnavailable when Redis cannot be reached.
func (m *Manager) Inspect(ctx context.Context, name string) (Holder, bool, error) {
	if err := ValidateStrictName(name); err != nil {
		return Holder{}, false, err
	}
	res, err := inspectScript.Run(ctx, m.clients[0], m.keys(name)[:2]).Slice()
	if err != nil {
		return Holder{}, false, &kindError{ErrUnavailable, fmt.Errorf("lock: inspect: %w", err)}
	}
	return holderFrom(res)
}

// holderFrom reads inspectScript's reply. A key without an expiry (written
// by something else) shows a TTL of 0.
func holderFrom(res []any) (Holder, bool, error) {
	if len(res) != 4 {
		return Holder{}, false, fmt.Errorf("lock: inspect: unexpected reply %v", res)
	}
	held, _ := res[0].(int64)
	owner, _ := res[1].(string)
	fence, _ := res[2].(int64)
	pttl, _ := res[3].(int64)
	return Holder{Owner: owner, Fence: fence, TTL: time.Duration(max(pttl, 0)) * time.Millisecond}, held == 1, nil
}

// Renew extends a fenced lease from its token alone, as a client that kept
// only the token can: ttl 0 means the TTL given at acquire. It returns the
// lease with its new validity, ErrInvalidName, ErrInvalidArgument,
// ErrNotHolder, or ErrUnavailable.
func (m *Manager) Renew(ctx context.Context, name, token string, ttl time.Duration) (Lease, error) {
	if err := ValidateStrictName(name); err != nil {
		return Lease{}, err
	}
	if err := validateToken(token); err != nil {
		return Lease{}, err
	}
	if ttl != 0 {
		if err := validateTTL(ttl); err != nil {
			return Lease{}, err
		}
	}
	res, err := grantScript.Run(ctx, m.clients[0], m.keys(name)[:2], token, metaTTL.Milliseconds()).Slice()
	if errors.Is(err, redis.Nil) {
		return Lease{}, &kindError{ErrNotHolder, errors.New("lock: token does not hold the lock")}
	}
	if err != nil || len(res) != 3 {
		return Lease{}, &kindError{ErrUnavailable, fmt.Errorf("lock: read grant: %w (reply %v)", err, res)}
	}
	owner, _ := res[0].(string)
	fence, _ := res[1].(int64)
	ttlMS, _ := res[2].(int64)
	if ttl == 0 {
		ttl = time.Duration(ttlMS) * time.Millisecond
	}
	if ttl <= 0 {
		return Lease{}, &kindError{ErrNotHolder, errors.New("lock: held without a grant; use the API that took it")}
	}
	return m.Extend(ctx, Lease{Name: name, Token: token, TTL: ttl, Owner: owner, Fence: fence})
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
	if err := ValidateStrictName(name); err != nil {
		return err
	}
	if err := validateToken(token); err != nil {
		return err
	}
	if err := m.Release(ctx, Lease{Name: name, Token: token}); err != nil {
		return err
	}
	// Best effort: a lost message only delays waiters until their timer
	// for the holder's TTL.
	_ = m.clients[0].Publish(ctx, ReleasedChannel, name).Err()
	return nil
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
func (m *Manager) Check(ctx context.Context, name string, fence int64) error {
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
