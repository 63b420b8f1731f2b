package lock

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Fair waiting. A fair waiter (Grant.Fair, or any waiter of a name whose
// queue exists) has a place in the name's queue in Redis, kept alive by
// its replica with a look every queueLook. The script that frees room
// (a release, an expiry, a look) grants the name to the queue's head in
// the same step and announces "= now id fence" on the released channel,
// so the head's answer needs no further round trip. A look also finds a
// grant whose message was lost.

// ticket is a waiter's identity in a queue: the token it will hold the
// name with, and an id that can be announced (the token never is).
type ticket struct {
	token, id string
}

func newTicket() (*ticket, error) {
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	id, err := newToken()
	if err != nil {
		return nil, err
	}
	return &ticket{token: token, id: id[:12]}, nil
}

// queuedError answers an acquire that took a place in the queue.
type queuedError struct {
	position int
	placed   time.Time // when the answer that placed the waiter arrived
	// base is a local instant no later than Redis's time 0 (its epoch):
	// the time the call was sent, less Redis's time when the script ran.
	// A grant at Redis time t happened here no earlier than base + t.
	base time.Time
}

func (*queuedError) Error() string { return "lock: queued" }

// redisBase is queuedError.base for a call sent at sent that read Redis's
// time now (ms).
func redisBase(sent time.Time, now int64) time.Time {
	return sent.Add(-time.Duration(now) * time.Millisecond)
}

// grantBoard delivers grant messages to this replica's fair waiters.
type grantBoard struct {
	mu   sync.Mutex
	byID map[string]chan grantNotice
}

func (b *grantBoard) add(id string) chan grantNotice {
	ch := make(chan grantNotice, 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byID == nil {
		b.byID = map[string]chan grantNotice{}
	}
	b.byID[id] = ch
	return ch
}

func (b *grantBoard) remove(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.byID, id)
}

// deliver passes on a grant message's grants to the waiters here.
func (b *grantBoard) deliver(at int64, grants map[string]int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, fence := range grants {
		if ch := b.byID[id]; ch != nil {
			select {
			case ch <- grantNotice{fence: fence, at: at}:
			default:
			}
		}
	}
}

// queued reports how many of this replica's requests wait in queues.
func (b *grantBoard) queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.byID)
}

// look runs the queue script for t on name: renew its place, or with
// modeLeave give it up. It returns the script's answer and when it was sent.
func (m *Manager) look(ctx context.Context, name string, g Grant, t *ticket, mode string) (scriptReply, time.Time, error) {
	sent := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nodeIOTimeout)
	defer cancel()
	r, err := evalOn(ctx, m.nodes[0], m.sc.queue, m.keys(name), m.argvSpec(name, t.token, 0, "", mode, specOf(g, t.id)))
	return r, sent, err
}

// queuedLease is the lease a queue granted t: its validity counts from the
// earliest local instant the grant can have happened, base + at.
func queuedLease(name string, g Grant, t *ticket, fence int64, granted time.Time) Lease {
	if now := time.Now(); granted.After(now) {
		granted = now
	}
	return Lease{Name: name, Token: t.token, TTL: g.TTL, Until: validUntil(granted, g.TTL), Owner: g.Owner, Fence: fence,
		Kind: g.Kind, Mode: g.Mode, Limit: g.Limit}
}

// waitInQueue waits in name's queue, placed there by an acquire that
// answered q, until granted, until deadline (then it leaves the queue and
// makes a last attempt, which says who holds the name), or until ctx ends
// or the replica stops waiting (then it leaves, giving back a grant that
// came meanwhile).
func (m *Manager) waitInQueue(ctx context.Context, name string, g Grant, t *ticket, q *queuedError, deadline time.Time) (Lease, error) {
	notices := m.grants.add(t.id)
	placed := q.placed
	defer m.grants.remove(t.id)
	base := q.base
	looks := time.NewTicker(queueLook)
	defer looks.Stop()
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	// leave gives up the place; a grant that came first is kept (or given
	// back when nobody is left to use it).
	leave := func(keep bool) (Lease, bool) {
		r, sent, err := m.look(ctx, name, g, t, modeLeave)
		if err != nil || r.int(0) != 1 {
			return Lease{}, false
		}
		l := queuedLease(name, g, t, r.int(1), sent.Add(ms(r.int(2))-g.TTL))
		if !keep {
			_, _ = m.ReleaseKind(context.WithoutCancel(ctx), g.Kind, name, t.token)
			return Lease{}, false
		}
		return l, true
	}
	for {
		select {
		case n := <-notices:
			return m.queueGranted(ctx, queuedLease(name, g, t, n.fence, base.Add(time.Duration(n.at)*time.Millisecond)), g, placed)
		case <-looks.C:
			r, sent, err := m.look(ctx, name, g, t, "")
			switch {
			case err != nil:
				// Redis did not answer: the place may lapse; the next look
				// tells.
			case r.int(0) == 1:
				// Granted, and the message is late or was lost: the lease
				// ends pttl after the look ran, which was after it was sent.
				return m.queueGranted(ctx, queuedLease(name, g, t, r.int(1), sent.Add(ms(r.int(2))-g.TTL)), g, placed)
			case r.int(0) == 2:
				base = later(base, redisBase(sent, r.int(2)))
			default:
				// The place lapsed (this replica was too slow to renew it):
				// queue again, at the end.
				l, err := m.tryAcquire(ctx, name, g, modeWaiter+modeFair, t)
				var again *queuedError
				if !errors.As(err, &again) {
					return l, err
				}
				base, placed = again.base, again.placed
			}
		case <-end.C:
			if l, ok := leave(true); ok {
				return m.queueGranted(ctx, l, g, placed)
			}
			return m.tryAcquire(ctx, name, g, modeContended, nil)
		case <-m.stopWaiting:
			leave(false)
			return Lease{}, errShuttingDown
		case <-ctx.Done():
			leave(false)
			return Lease{}, ctx.Err()
		}
	}
}

// queueGranted answers a grant from the queue. With Config.MinReplicas the
// grant, made by another connection's script, must first reach the
// replicas: a look (a write) on this replica's connection followed by
// WAIT covers it, since replicas acknowledge the replication stream in
// order. A grant too few acknowledged is given back, as acquire does.
func (m *Manager) queueGranted(ctx context.Context, l Lease, g Grant, placed time.Time) (Lease, error) {
	l.Queued = time.Since(placed)
	if !m.waitsReplicas() {
		return l, nil
	}
	t := &ticket{token: l.Token}
	_, acked, err := m.evalAcked(ctx, m.nodes[0], m.sc.queue, l.Name, m.keys(l.Name), m.argvSpec(l.Name, t.token, 0, "", "", specOf(g, "")))
	if err == nil && acked >= int64(m.minRepl) {
		return l, nil
	}
	_, _ = m.ReleaseKind(context.WithoutCancel(ctx), g.Kind, l.Name, l.Token)
	if err != nil {
		return Lease{}, unavailable("acquire", err)
	}
	return Lease{}, m.unacked("acquire", acked)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
