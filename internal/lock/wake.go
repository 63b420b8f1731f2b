package lock

import (
	"context"

	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ReleasedChannel is the Redis pub/sub channel on which every /v1 release
// is announced, as "fence name" (see parseReleased). A message is only a
// hint that a lock may be free: the acquire that follows decides. The
// fence lets the granting replica's expiry watcher tell this grant's
// release from a later grant's.
const ReleasedChannel = "lockd:released"

// Run does this Manager's background work until ctx ends: it holds one
// subscription to ReleasedChannel per node and wakes local waiters when a
// lock they want is released on any replica, and in quorum mode it checks
// every second whether a node kept out after a restart may vote again.
// go-redis re-subscribes after a lost connection; a release missed
// meanwhile delays waiters only until the holder's lease would have ended.
// A node that stopped answering a call is probed every probeEvery and used
// again once it answers. It also runs the expiry watcher (expiry.go).
func (m *Manager) Run(ctx context.Context) {
	var wg sync.WaitGroup
	if m.cluster != nil {
		wg.Go(func() { m.followCluster(ctx) })
	} else {
		for _, n := range m.nodes {
			wg.Go(func() { m.listen(ctx, n) })
		}
	}
	if len(m.nodes) > 1 {
		wg.Go(func() { every(ctx, time.Second, m.maintain) })
		wg.Go(func() { every(ctx, probeEvery, m.probeSlow) })
	}
	wg.Go(func() { m.watchExpiries(ctx) })
	if len(m.nodes) == 1 {
		wg.Go(func() { every(ctx, queueLook, m.lookAll) })
	}
	wg.Wait()
}

// every runs fn every d until ctx ends.
func every(ctx context.Context, d time.Duration, fn func(context.Context)) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn(ctx)
		}
	}
}

func (m *Manager) listen(ctx context.Context, n *node) {
	// A maintenance context: a node kept out still delivers wake-ups.
	mctx := context.WithValue(ctx, maintenanceKey{}, true)
	ps := n.client.Subscribe(mctx)
	m.hear(ctx, ps, func() { _ = ps.Subscribe(mctx, ReleasedChannel) }, nil)
}

// hear subscribes (with subscribe, on ps) and handles the release messages
// until ctx ends or ps is closed, then closes ps. go-redis's reader of ps is
// started before the subscription, so once Redis counts the subscriber
// every goroutine of it runs. (A failed subscribe is retried by go-redis
// when it reconnects.) When Redis ends a sharded subscription (its slot
// moved), it tells ended, without waiting.
func (m *Manager) hear(ctx context.Context, ps *redis.PubSub, subscribe func(), ended chan<- struct{}) {
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions()
	subscribe()
	for {
		select {
		case <-ctx.Done():
			return
		case got, ok := <-ch:
			if !ok {
				return
			}
			msg, isMsg := got.(*redis.Message)
			if !isMsg {
				if s, _ := got.(*redis.Subscription); s != nil && s.Kind == "sunsubscribe" && ended != nil {
					select {
					case ended <- struct{}{}:
					default:
					}
				}
				continue
			}
			if at, grants, ok := parseGrants(msg.Payload); ok {
				m.grants.deliver(at, grants)
				continue
			}
			name, fence := parseReleased(msg.Payload)
			m.expiries.disarm(name, fence)
			m.waiters.wakeOne(name)
		}
	}
}

// AcquireWait is TryAcquire that, while the lock is held, waits up to wait
// for it: it is woken by a release (see Run) or exactly when the holder's
// lease runs out, never by polling, and makes one last attempt when wait runs
// out. wait must be 0–MaxWait. It returns the lease and how long it waited,
// or TryAcquire's errors, ErrTooManyWaiters when this replica already has
// its maximum of waiting requests, ErrUnavailable once StopWaiting was
// called, or ctx's error when ctx ends first (the caller went away): then it
// holds nothing, even if the grant came just before.
func (m *Manager) AcquireWait(ctx context.Context, name string, g Grant, wait time.Duration) (Lease, time.Duration, error) {
	if err := validateWait(wait); err != nil {
		m.obs.Acquired(g.Kind.label(), resultOf(err), 0)
		return Lease{}, 0, err
	}
	if err := ValidateStrictName(name); err != nil {
		m.obs.Acquired(g.Kind.label(), resultOf(err), 0)
		return Lease{}, 0, err
	}
	if err := m.validateGrant(&g); err != nil {
		m.obs.Acquired(g.Kind.label(), resultOf(err), 0)
		return Lease{}, 0, err
	}
	start := time.Now()
	l, err := m.acquireWait(ctx, name, g, wait)
	waited := time.Since(start)
	m.obs.Acquired(g.Kind.label(), resultOf(err), waited)
	return l, waited, err
}

func (m *Manager) acquireWait(ctx context.Context, name string, g Grant, wait time.Duration) (_ Lease, err error) {
	var ws waitSpan
	defer func() { ws.end(err) }()
	if wait > 0 {
		if err := m.startWaiting(); err != nil {
			return Lease{}, err
		}
		defer m.endWaiting()
	}
	deadline := time.Now().Add(wait)
	// A waiter keeps one token and queue id across its attempts: a name
	// with a fair queue takes it in, in arrival order (queue.go). Quorum
	// mode has no queues.
	var t *ticket
	if wait > 0 && len(m.nodes) == 1 {
		var err error
		if t, err = newTicket(); err != nil {
			return Lease{}, &kindError{ErrUnavailable, err}
		}
	}
	for {
		// Register before the attempt, so a release between a refused
		// attempt and the wait is not missed.
		w := m.waiters.add(name)
		// Only the last attempt's refusal is reported as contention.
		final, mode := !time.Now().Before(deadline), ""
		if final {
			mode = modeContended
		}
		// A release PUBLISHes only when its grant is marked: by an attempt
		// that is going to wait, or that leaves other waiters of this
		// replica behind, whether it wins (they wait for this grant) or
		// not (for the holder's). A woken waiter re-registers last, so
		// without the mark, those left would sleep through the release.
		switch {
		case m.waiters.count(name) > 1:
			mode += modeWaiter + modeQueue
		case !final:
			mode += modeWaiter
		}
		attempt := t
		switch {
		case final:
			attempt = nil // the last attempt joins no queue
		case g.Fair:
			mode += modeFair
		}
		l, err := m.tryAcquire(ctx, name, g, mode, attempt)
		var queued *queuedError
		if errors.As(err, &queued) {
			m.waiters.remove(name, w, true)
			return m.waitInQueue(ws.begin(ctx, m.tracer, true), name, g, t, queued, deadline)
		}
		var le *LockedError
		var delayed *LockDelayError
		split := err == errVotesSplit
		if (!errors.As(err, &le) && !errors.As(err, &delayed) && !split) || final {
			// A waiter that got the lock keeps any wake-up that came
			// meanwhile: it was the previous holder's release, and the
			// next waiter would only find the lock taken.
			m.waiters.remove(name, w, err != nil)
			if err == nil && ctx.Err() != nil {
				// Nobody is left to use or release this lease.
				_, _ = m.ReleaseKind(context.WithoutCancel(ctx), g.Kind, name, l.Token)
				return Lease{}, ctx.Err()
			}
			return l, err
		}
		// The holder's TTL is 0 when the lock was freed in between; when
		// no grant holds a quorum (attempts split the votes), there is no
		// holder: then try again after a short random pause, so racing
		// waiters fall apart.
		var pause time.Duration
		switch {
		case le != nil:
			pause = le.FirstEnd()
		case delayed != nil:
			pause = time.Until(delayed.Until)
		}
		if pause == 0 {
			pause = time.Duration(1+rand.IntN(5)) * time.Millisecond
		}
		ctx = ws.begin(ctx, m.tracer, g.Fair)
		timer := time.NewTimer(min(pause, time.Until(deadline)))
		select {
		case <-w:
		case <-timer.C:
		case <-m.stopWaiting:
			timer.Stop()
			m.waiters.remove(name, w, true)
			return Lease{}, errShuttingDown
		case <-ctx.Done():
			timer.Stop()
			m.waiters.remove(name, w, true)
			return Lease{}, ctx.Err()
		}
		timer.Stop()
		m.waiters.remove(name, w, true)
	}
}

// startWaiting takes one of the replica's MaxWaiters slots, or returns
// ErrTooManyWaiters when none is left. Whoever gets a slot gives it back
// with endWaiting.
func (m *Manager) startWaiting() error {
	if m.waiting.Add(1) > int64(m.maxWaiters) {
		m.waiting.Add(-1)
		return &kindError{ErrTooManyWaiters, fmt.Errorf("lock: %d requests already wait on this replica", m.maxWaiters)}
	}
	m.obs.Waiting(1)
	return nil
}

func (m *Manager) endWaiting() {
	m.waiting.Add(-1)
	m.obs.Waiting(-1)
}

// ErrStopping answers waiters once StopWaiting was called: they should try
// another replica at once rather than hold the shutdown up. It also
// matches ErrUnavailable.
var ErrStopping = errors.New("lock: this replica is shutting down; try another")

var errShuttingDown = &kindError{ErrUnavailable, ErrStopping}

// StopWaiting answers every waiting request, now and later, with
// ErrUnavailable, so that a shutdown need not wait for them. Leases are
// left alone: they belong to their clients and expire by themselves.
func (m *Manager) StopWaiting() {
	m.stopOnce.Do(func() { close(m.stopWaiting) })
}

// waitlist keeps this replica's waiters per lock name, oldest first. A
// release wakes only the oldest: the others would only find the lock taken
// again, so one attempt per replica per release instead of one per waiter.
type waitlist struct {
	mu     sync.Mutex
	byName map[string][]chan struct{}
}

func (wl *waitlist) add(name string) chan struct{} {
	w := make(chan struct{}, 1)
	wl.mu.Lock()
	defer wl.mu.Unlock()
	if wl.byName == nil {
		wl.byName = map[string][]chan struct{}{}
	}
	wl.byName[name] = append(wl.byName[name], w)
	return w
}

// remove drops w. If w was woken but its owner is leaving without using the
// wake-up, and passOn is set, it passes the wake-up on to the next waiter.
func (wl *waitlist) remove(name string, w chan struct{}, passOn bool) {
	wl.mu.Lock()
	list := wl.byName[name]
	for i, c := range list {
		if c == w {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(wl.byName, name)
	} else {
		wl.byName[name] = list
	}
	wl.mu.Unlock()
	if !passOn {
		return
	}
	select {
	case <-w:
		// It had been woken and is leaving without the lock: the lock may
		// be free for the next one, which will find out with one attempt.
		wl.wakeOne(name)
	default:
	}
}

// count is how many wait on name here.
func (wl *waitlist) count(name string) int {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return len(wl.byName[name])
}

func (wl *waitlist) wakeOne(name string) {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	for _, w := range wl.byName[name] {
		select {
		case w <- struct{}{}:
			return
		default: // already woken and not yet gone: try the next
		}
	}
}

// Waiting reports how many requests wait on this Manager, over all names.
func (m *Manager) Waiting() int {
	m.waiters.mu.Lock()
	defer m.waiters.mu.Unlock()
	n := 0
	for _, l := range m.waiters.byName {
		n += len(l)
	}
	return n
}

// parseReleased reads a ReleasedChannel message, "fence name"; a bare name
// (an older replica's message) has fence 0.
func parseReleased(msg string) (name string, fence int64) {
	f, n, ok := strings.Cut(msg, " ")
	if !ok {
		return msg, 0
	}
	v, err := strconv.ParseInt(f, 10, 64)
	if err != nil {
		return msg, 0
	}
	return n, v
}
