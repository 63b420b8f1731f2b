package lock

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Holder describes who holds a lock. It never carries the token.
type Holder struct {
	Owner string
	Fence int64
	TTL   time.Duration // time left before the key expires
	Mode  Mode          // a lock holder's mode ("" for a semaphore's)
}

// LockedError is returned when a lock is held by someone else. It matches
// ErrLocked with errors.Is and says who holds it and for how long.
type LockedError struct {
	Holder Holder // the holder with the highest fence
	// Holders are every live holder (one for an exclusive lock), by fence.
	Holders []Holder
	Kind    Kind
	Mode    Mode // a lock's holders' mode
	Limit   int  // a semaphore's limit
	Queue   int  // waiters in the name's fair queue, ahead of the caller
	votes   int  // nodes that refused for this holder
}

// errVotesSplit answers an acquire that no grant holds a majority against:
// with several nodes, contenders can split the votes. It matches
// ErrUnavailable; AcquireWait tries again at once after a short pause.
var errVotesSplit = &kindError{ErrUnavailable, errors.New("lock: no majority for any holder (the votes split); try again")}

// errWrongToken is the cause of ErrNotHolder from Renew and ReleaseToken,
// in the words a caller needs: a wrong token, a second release and an
// expired lease look the same from here.
var errWrongToken = errors.New("lock: the token does not hold this lock")

// FirstEnd is how long until the first live holder's lease ends, when
// a permit or a shared holder may free up: the earliest a retry can win.
func (e *LockedError) FirstEnd() time.Duration {
	first := e.Holder.TTL
	for _, h := range e.Holders {
		first = min(first, h.TTL)
	}
	return first
}

func (e *LockedError) Error() string {
	queue := ""
	if e.Queue > 0 {
		queue = fmt.Sprintf("; %d waiting in its queue", e.Queue)
	}
	switch {
	case e.Kind == KindSemaphore && len(e.Holders) >= e.Limit:
		return fmt.Sprintf("lock: all %d permits are held (the first ends in %v)%s", e.Limit, e.FirstEnd().Round(100*time.Millisecond), queue)
	case e.Kind == KindSemaphore:
		return fmt.Sprintf("lock: %d of %d permits are held, but others wait first%s", len(e.Holders), e.Limit, queue)
	case e.Mode == Shared:
		return fmt.Sprintf("lock: held shared by %d (the first ends in %v)%s", len(e.Holders), e.FirstEnd().Round(100*time.Millisecond), queue)
	case e.Queue > 0 && len(e.Holders) == 0:
		return fmt.Sprintf("lock: the name is handed on in queue order%s", queue)
	}
	return fmt.Sprintf("lock: already held (owner %q, fence %d, %v left)%s", e.Holder.Owner, e.Holder.Fence, e.Holder.TTL.Round(100*time.Millisecond), queue)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Grant asks for a fenced lease.
type Grant struct {
	TTL   time.Duration
	Owner string // free text shown to others; not a secret
	// Kind is KindLock (the default) or KindSemaphore.
	Kind Kind
	// Mode is a lock's: Exclusive (the default) or Shared.
	Mode Mode
	// Limit is a semaphore's: how many may hold it at once (1–MaxLimit).
	// Every holder must ask with the same limit.
	Limit int
	// Fair makes a waiting acquire wait in the name's queue in Redis: grants
	// go in arrival order across replicas, and the release that frees the
	// name grants it to the queue's head in the same step.
	Fair bool
	// LockDelay (0–MaxLockDelay) keeps the name refused for this long
	// after the lease ends by expiry rather than release.
	LockDelay time.Duration
}

// validateGrant checks g and fills in its defaults.
func (m *Manager) validateGrant(g *Grant) error {
	if err := m.validateTTL(g.TTL); err != nil {
		return err
	}
	if err := validateOwner(g.Owner); err != nil {
		return err
	}
	return m.normalize(g)
}

// driftFactor is the share of a TTL kept back from a lease's validity for
// clock drift between lockd and Redis (redsync's and Redlock's 1%).
const driftFactor = 100

// validUntil is when a lease asked for at start with ttl stops being safe
// to work under.
func validUntil(start time.Time, ttl time.Duration) time.Time {
	return start.Add(ttl - ttl/driftFactor)
}

func ms(n int64) time.Duration { return time.Duration(max(n, 0)) * time.Millisecond }

// TryAcquire makes one attempt at name, which must pass ValidateStrictName.
// On success the lease carries a fence, strictly greater than every fence
// granted for name before, and a token of 128 random bits in URL-safe
// base64. On one Redis node it is one script: take the lock if free, assign
// the fence, record the grant and its event; a refusal says who holds the
// lock in the same answer. It returns ErrInvalidName, ErrInvalidArgument (a
// TTL outside MinTTL to the configured maximum, an owner too long or
// unprintable), a *LockedError, or ErrUnavailable. It is AcquireWait
// without a wait, so the Observer hears of it as of every acquire.
func (m *Manager) TryAcquire(ctx context.Context, name string, g Grant) (Lease, error) {
	l, _, err := m.AcquireWait(ctx, name, g, 0)
	return l, err
}

// tryAcquire is TryAcquire; mode says whether a refusal is reported as a
// "contended" event (only a caller's last attempt is), and whether the
// caller waits. A waiter passes its ticket, which it keeps across attempts:
// the attempt may then answer a *queuedError, its place in the name's
// queue (queue.go).
func (m *Manager) tryAcquire(ctx context.Context, name string, g Grant, mode string, t *ticket) (Lease, error) {
	if err := ValidateStrictName(name); err != nil {
		return Lease{}, err
	}
	if err := m.validateGrant(&g); err != nil {
		return Lease{}, err
	}
	var token, id string
	if t != nil {
		token, id = t.token, t.id
	} else {
		var err error
		if token, err = newToken(); err != nil {
			return Lease{}, &kindError{ErrUnavailable, err}
		}
	}
	start := time.Now()
	keys := m.keys(name)
	ttl := g.TTL.Milliseconds()
	var acked int64 // with MinReplicas (one node: onEvery calls at once)
	got, errs := onEvery(ctx, m, nodeTimeout(g.TTL), func(ctx context.Context, n *node) (r scriptReply, err error) {
		argv := m.argv(name, token, ttl, g.Owner, mode)
		if g.rich() || id != "" {
			argv = m.argvSpec(name, token, ttl, g.Owner, mode, specOf(g, id))
		}
		if m.waitsReplicas() {
			r, acked, err = m.evalAcked(ctx, n, m.sc.acquire, name, keys, argv)
			return r, err
		}
		return evalOn(ctx, n, m.sc.acquire, keys, argv)
	})
	won := 0
	var fence int64
	refusals := map[string]*LockedError{} // by the holder's token
	var refused *LockedError
	for _, r := range got {
		switch r.val.int(0) {
		case 1:
			won++
			fence = max(fence, r.val.int(1))
			continue
		case 2:
			return Lease{}, &queuedError{base: redisBase(start, r.val.int(2)), placed: time.Now()}
		case -2:
			return Lease{}, &KindMismatchError{Kind: kindOf(r.val.str(1))}
		case -3:
			return Lease{}, &LimitMismatchError{Limit: int(r.val.int(1))}
		case -4:
			return Lease{}, &LockDelayError{Until: time.Now().Add(ms(r.val.int(1)))}
		}
		e := refusals[r.val.str(4)]
		if e == nil {
			var err error
			if e, err = refusalOf(r.val); err != nil {
				return Lease{}, unavailable("acquire", err)
			}
			refusals[r.val.str(4)] = e
		}
		e.votes++
		if r.val.str(5) == "" {
			// One plain holder, as each node saw it: a record's script
			// pttl is to its first deadline, not this holder's.
			e.Holder.Fence = max(e.Holder.Fence, r.val.int(1))
			e.Holder.TTL = min(e.Holder.TTL, ms(r.val.int(2)))
		}
		if e.votes >= m.quorum() {
			refused = e
		}
	}
	l := Lease{Name: name, Token: token, TTL: g.TTL, Until: validUntil(start, g.TTL), Owner: g.Owner, Fence: fence,
		Kind: g.Kind, Mode: g.Mode, Limit: g.Limit}
	if won < m.quorum() {
		if won > 0 {
			m.undo(ctx, l)
		}
		switch {
		case refused != nil:
			return Lease{}, refused // a majority holds one grant
		case len(got) < m.quorum():
			return Lease{}, unavailable("acquire", errs)
		}
		// No grant holds a majority: contenders split the votes, or the
		// holder's grant lost nodes. Nobody is known to hold the lock, so
		// this is no refusal: try again.
		return Lease{}, errVotesSplit
	}
	// Nodes whose candidate fence was lower (their counters lagged) are
	// raised to the chosen one; when the counters agree, as they do while
	// every node takes part, the acquire was one round trip.
	lagging := map[int]string{}
	for _, r := range got {
		if r.val.int(0) == 1 && r.val.int(1) < fence {
			lagging[r.node] = r.val.str(3)
		}
	}
	if len(lagging) > 0 {
		if err := m.raise(ctx, l, won-len(lagging), lagging); err != nil {
			m.undo(ctx, l)
			return Lease{}, err
		}
	}
	if m.waitsReplicas() && acked < int64(m.minRepl) {
		// A failover now could hand the lock to a second holder. Redisson
		// takes any acknowledgement; lockd wants as many as it was told.
		m.undo(ctx, l)
		return Lease{}, m.unacked("acquire", acked)
	}
	if !time.Now().Before(l.Until) {
		m.undo(ctx, l)
		return Lease{}, unavailable("acquire", errors.New("the lease's validity ran out before Redis answered"))
	}
	if g.Kind == KindLock && g.Mode == Exclusive {
		// A lease the expiry watcher can follow: one holder per name.
		m.expiries.arm(l)
	}
	return l, nil
}

// refusalOf reads an acquire's refusal: one plain holder, {0, fence, pttl,
// owner, token}, or the record of richer grants, {0, fence, pttl to the
// first deadline, owner, token, record, now}.
func refusalOf(r scriptReply) (*LockedError, error) {
	h := Holder{Owner: r.str(3), Fence: r.int(1), TTL: ms(r.int(2))}
	st := plainState(h)
	if raw := r.str(5); raw != "" {
		var err error
		if st, err = stateOf(raw, r.int(6)); err != nil {
			return nil, err
		}
	}
	if n := len(st.Holders); n > 0 {
		// The script's pttl is to the first deadline, which may be another
		// holder's than the highest fence's: take that holder whole.
		h = st.Holders[n-1]
	}
	h.Mode = st.Mode
	return &LockedError{Holder: h, Holders: st.Holders, Kind: st.Kind, Mode: st.Mode, Limit: st.Limit, Queue: len(st.Waiters)}, nil
}

// raise, in quorum mode, makes the highest candidate fence of the nodes
// that granted the lease its fence on the lagging ones (node index to the
// id of the event each wrote), so that a majority holds it: ready of them
// already do. A maximum over per-node counters alone would not do: two
// grants' majorities share a node, but the maximum may come from another
// one. Written to a majority, the fence is seen by any later grant's.
func (m *Manager) raise(ctx context.Context, l Lease, ready int, lagging map[int]string) error {
	keys := m.keys(l.Name)
	got, errs := onEvery(ctx, m, nodeTimeout(l.TTL), func(ctx context.Context, n *node) (int64, error) {
		id, ok := lagging[n.index]
		if !ok {
			return 0, nil
		}
		return m.sc.raise.Run(ctx, n.client, keys, append(m.argv(l.Name, l.Token, l.Fence, "", ""), id)...).Int64()
	})
	if ready+countIf(got, func(v int64) bool { return v == 1 }) >= m.quorum() {
		return nil
	}
	if errs != nil {
		return unavailable("write fences on a quorum", errs)
	}
	return &LockedError{} // the key was lost on a majority meanwhile
}

// undo gives back a lease that cannot be used (no quorum, or its validity
// ran out), silently: no event, and the waiters are woken.
func (m *Manager) undo(ctx context.Context, l Lease) {
	ctx = context.WithoutCancel(ctx)
	keys := m.keys(l.Name)
	argv := m.argv(l.Name, l.Token, 0, "", modeSilent)
	_, _ = onEvery(ctx, m, nodeTimeout(l.TTL), func(ctx context.Context, n *node) (scriptReply, error) {
		return evalOn(ctx, n, m.sc.release, keys, argv)
	})
}

// Renew extends a fenced lease from its token alone, as a client that kept
// only the token can: ttl 0 means the TTL given at acquire. It returns the
// lease with its new validity, ErrInvalidName, ErrInvalidArgument,
// ErrNotHolder, or ErrUnavailable.
func (m *Manager) Renew(ctx context.Context, name, token string, ttl time.Duration) (l Lease, err error) {
	return m.RenewKind(ctx, KindLock, name, token, ttl)
}

// kindArgv is a script's arguments for an operation on a name of kind.
func (m *Manager) kindArgv(kind Kind, name, token string, n int64, mode string) []any {
	if kind == KindSemaphore {
		return m.argvSpec(name, token, n, "", mode, spec{kind: kind})
	}
	return m.argv(name, token, n, "", mode)
}

// kindMismatch finds a script's {-2, kind} answer among got.
func kindMismatch(got []reply[scriptReply]) error {
	for _, r := range got {
		if r.val.int(0) == -2 {
			return &KindMismatchError{Kind: kindOf(r.val.str(1))}
		}
	}
	return nil
}

// RenewKind is Renew for a name of kind: a semaphore's permit, or a lock
// (ErrKindMismatch when the name is held as the other kind).
func (m *Manager) RenewKind(ctx context.Context, kind Kind, name, token string, ttl time.Duration) (l Lease, err error) {
	defer func() { m.obs.Extended(kind.label(), resultOf(err, "extended")) }()
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
	start := time.Now()
	keys := m.keys(name)
	var acked int64
	got, errs := onEvery(ctx, m, nodeTimeout(ttl), func(ctx context.Context, n *node) (r scriptReply, err error) {
		argv := m.kindArgv(kind, name, token, ttl.Milliseconds(), "")
		if m.waitsReplicas() {
			r, acked, err = m.evalAcked(ctx, n, m.sc.extend, name, keys, argv)
			return r, err
		}
		return evalOn(ctx, n, m.sc.extend, keys, argv)
	})
	if err := kindMismatch(got); err != nil {
		return Lease{}, err
	}
	l = Lease{Name: name, Token: token, Kind: kind}
	ok, bare := 0, 0
	for _, r := range got {
		switch r.val.int(0) {
		case 1:
			ok++
			if f := r.val.int(1); f >= l.Fence {
				l.Fence, l.Owner, l.TTL = f, r.val.str(3), ms(r.val.int(2))
				switch {
				case kind == KindSemaphore:
					l.Limit = int(r.val.int(5))
				case r.val.str(4) == "s": // a record's holder says its mode
					l.Mode = Shared
				default:
					l.Mode = Exclusive
				}
			}
		case -1:
			bare++
		}
	}
	switch {
	case ok >= m.quorum():
		l.Until = validUntil(start, l.TTL)
		m.expiries.extended(l)
		if m.waitsReplicas() && acked < int64(m.minRepl) {
			// The lease is extended on the master, but a failover could
			// lose the extension: the holder must not count on it.
			return Lease{}, m.unacked("extend", acked)
		}
		return l, nil
	case ok+len(m.nodes)-len(got) >= m.quorum():
		// The nodes that did not answer could make a majority with those
		// that extended: whether the lease still holds is not known.
		return Lease{}, unavailable("extend", errs)
	case bare >= m.quorum():
		return Lease{}, &kindError{ErrNotHolder, errors.New("lock: the token does not hold this lock; a demo request (GET /lock) holds it")}
	}
	return Lease{}, &kindError{ErrNotHolder, errWrongToken}
}

// ReleaseToken releases name for the holder of token, from any replica, and
// announces the release on ReleasedChannel so that waiters on every replica
// wake at once. It returns ErrInvalidName, ErrInvalidArgument,
// ErrNotHolder or ErrUnavailable. (The demo's Release does not announce: its
// Redis trace is the one doc/DEMO.md shows.)
func (m *Manager) ReleaseToken(ctx context.Context, name, token string) error {
	_, err := m.ReleaseGrant(ctx, name, token)
	return err
}

// ReleaseGrant is ReleaseToken that also says which grant it released: its
// owner and fence. In quorum mode it answers once a majority has deleted
// the key and every node counted healthy has answered, so no healthy node
// still holds it. It returns ReleaseToken's errors.
func (m *Manager) ReleaseGrant(ctx context.Context, name, token string) (h Holder, err error) {
	return m.ReleaseKind(ctx, KindLock, name, token)
}

// ReleaseKind is ReleaseGrant for a name of kind (ErrKindMismatch when the
// name is held as the other kind).
func (m *Manager) ReleaseKind(ctx context.Context, kind Kind, name, token string) (h Holder, err error) {
	var held time.Duration
	defer func() { m.obs.Released(kind.label(), resultOf(err, "released"), held) }()
	if err := ValidateStrictName(name); err != nil {
		return Holder{}, err
	}
	if err := validateToken(token); err != nil {
		return Holder{}, err
	}
	keys := m.keys(name)
	mode := ""
	if m.expiries.watching(name, token) {
		mode = modeLocal
	}
	got, errs := onEvery(ctx, m, nodeTimeout(0), func(ctx context.Context, n *node) (scriptReply, error) {
		return evalOn(ctx, n, m.sc.release, keys, m.kindArgv(kind, name, token, 0, mode))
	})
	if err := kindMismatch(got); err != nil {
		return Holder{}, err
	}
	ok := 0
	heldUs := int64(-1) // on Redis's clock, which timed the grant too
	for _, r := range got {
		if r.val.int(0) == 1 {
			ok++
			if f := r.val.int(1); f >= h.Fence {
				h.Fence, h.Owner, heldUs = f, r.val.str(3), r.val.int(2)
			}
		}
	}
	switch {
	case ok >= m.quorum():
		m.expiries.disarm(name, h.Fence)
		if heldUs >= 0 {
			held = time.Duration(heldUs) * time.Microsecond
		}
		return h, nil
	case ok+len(m.nodes)-len(got) >= m.quorum():
		// The nodes that did not answer could make a majority with those
		// that released: whether this token held the lock is not known.
		return Holder{}, unavailable("release", errs)
	}
	return Holder{}, &kindError{ErrNotHolder, errWrongToken}
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
	return m.CheckKind(ctx, KindLock, name, fence)
}

// CheckKind is Check for a name of kind: fence is current when any live
// holder (a shared holder, a semaphore's permit) has it.
func (m *Manager) CheckKind(ctx context.Context, kind Kind, name string, fence int64) (err error) {
	defer func() { m.obs.FenceChecked(kind.label(), resultOf(err, "current")) }()
	if err := ValidateStrictName(name); err != nil {
		return err
	}
	if fence < 1 {
		return invalid("fence %d is not a granted fence; fences start at 1", fence)
	}
	st, _, err := m.InspectState(ctx, kind, name)
	if err != nil {
		return err
	}
	for _, h := range st.Holders {
		if h.Fence == fence {
			return nil
		}
	}
	return &StaleFenceError{Current: st.top().Fence}
}

// Inspect reports whether name is held and by whom: held means a quorum of
// nodes hold the same grant. It returns ErrInvalidName, or ErrUnavailable
// when too few nodes answer to tell.
func (m *Manager) Inspect(ctx context.Context, name string) (Holder, bool, error) {
	st, held, err := m.InspectState(ctx, KindLock, name)
	return st.top(), held, err
}

// InspectState reports everything known of name, a name of kind: its
// holders (held: at least one), its queue and any lock-delay in force. It
// returns ErrInvalidName, a *KindMismatchError when the name is held as
// the other kind, or ErrUnavailable when too few nodes answer to tell.
func (m *Manager) InspectState(ctx context.Context, kind Kind, name string) (State, bool, error) {
	if err := ValidateStrictName(name); err != nil {
		return State{}, false, err
	}
	entries, err := m.inspectMany(ctx, []string{name})
	if err != nil {
		return State{}, false, err
	}
	if len(entries) == 0 {
		return State{Kind: kind}, false, nil
	}
	st := entries[0].State
	if st.Kind != kind {
		return State{}, false, &KindMismatchError{Kind: st.Kind}
	}
	return st, len(st.Holders) > 0, nil
}
