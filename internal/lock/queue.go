package lock

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
	placed time.Time // when the answer that placed the waiter arrived
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

// notice is news for a fair waiter: a grant heard on the released channel
// (heard), or the answer of a look at its place (held, queued or lapsed).
type notice struct {
	kind  noticeKind
	fence int64
	at    int64     // heard: Redis's time of the grant, ms
	pttl  int64     // held: the lease's time left when the look ran, ms
	now   int64     // queued: Redis's time when the look ran, ms
	sent  time.Time // held, queued: when the look was sent
}

type noticeKind int

const (
	heard noticeKind = iota
	held
	queued
	lapsed
)

// grantBoard keeps this replica's fair waiters, for the grant messages and
// the looks that concern them.
type grantBoard struct {
	mu   sync.Mutex
	byID map[string]*waiter
}

type waiter struct {
	name, token string
	notices     chan notice
}

func (b *grantBoard) add(name string, t *ticket) chan notice {
	w := &waiter{name: name, token: t.token, notices: make(chan notice, 8)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.byID == nil {
		b.byID = map[string]*waiter{}
	}
	b.byID[t.id] = w
	return w.notices
}

func (b *grantBoard) remove(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.byID, id)
}

// tell passes n on to w without blocking: a notice that does not fit is
// dropped, and the next look says the same again.
func tell(w *waiter, n notice) {
	select {
	case w.notices <- n:
	default:
	}
}

// deliver passes on a grant message's grants to the waiters here.
func (b *grantBoard) deliver(at int64, grants map[string]int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, fence := range grants {
		if w := b.byID[id]; w != nil {
			tell(w, notice{kind: heard, fence: fence, at: at})
		}
	}
}

// byName is the waiters here by the name they wait for.
func (b *grantBoard) byName() map[string][]*waiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string][]*waiter{}
	for _, w := range b.byID {
		out[w.name] = append(out[w.name], w)
	}
	return out
}

// lookAll renews the places of every fair waiter here: one queue script
// per name for all its waiters, every name in one pipeline, so the cost
// grows with the names waited for, not with the waiters.
func (m *Manager) lookAll(ctx context.Context) {
	names := m.grants.byName()
	if len(names) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, nodeIOTimeout)
	defer cancel()
	sent := time.Now()
	pipe := m.nodes[0].client.Pipeline()
	cmds := map[string]*redis.Cmd{}
	for name, ws := range names {
		cmds[name] = m.sc.queue.EvalSha(ctx, pipe, m.keys(name), m.argvSpec(name, tokensOf(ws), 0, "", "", spec{})...)
	}
	if _, err := pipe.Exec(ctx); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The script cache was flushed behind lockd's back: load it for
		// the next look.
		_ = m.sc.queue.Load(ctx, m.nodes[0].client).Err()
	}
	for name, ws := range names {
		res, err := cmds[name].Slice()
		if err != nil {
			continue // Redis did not answer: the places may lapse; a later look tells
		}
		r := scriptReply(res)
		for i, w := range ws {
			tell(w, noticeOf(r, i, sent))
		}
	}
}

func tokensOf(ws []*waiter) string {
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w.token)
	}
	return b.String()
}

// noticeOf reads the i-th waiter's part of a queue script's answer.
func noticeOf(r scriptReply, i int, sent time.Time) notice {
	code, a, b := r.int(1+3*i), r.int(2+3*i), r.int(3+3*i)
	switch code {
	case 1:
		return notice{kind: held, fence: a, pttl: b, sent: sent}
	case 2:
		return notice{kind: queued, now: r.int(0), sent: sent}
	}
	return notice{kind: lapsed}
}

// leave takes t's place out of name's queue. When it was granted first, it
// returns the lease (ok).
func (m *Manager) leave(ctx context.Context, name string, g Grant, t *ticket) (Lease, bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nodeIOTimeout)
	defer cancel()
	sent := time.Now()
	r, err := evalOn(ctx, m.nodes[0], m.sc.queue, m.keys(name), m.argvSpec(name, t.token, 0, "", modeLeave, spec{}))
	if n := noticeOf(r, 0, sent); err == nil && n.kind == held {
		return heldLease(name, g, t, n), true
	}
	return Lease{}, false
}

// heldLease is the lease a look found t holding: it ends pttl after the
// look ran, which was after it was sent.
func heldLease(name string, g Grant, t *ticket, n notice) Lease {
	return queuedLease(name, g, t, n.fence, n.sent.Add(ms(n.pttl)-g.TTL))
}

// queuedLease is the lease a queue granted t: its validity counts from the
// earliest local instant the grant can have happened.
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
// came meanwhile). Its place is renewed by lookAll, which Run calls.
func (m *Manager) waitInQueue(ctx context.Context, name string, g Grant, t *ticket, q *queuedError, deadline time.Time) (Lease, error) {
	notices := m.grants.add(name, t)
	defer m.grants.remove(t.id)
	base, placed := q.base, q.placed
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	giveBack := func() {
		if l, ok := m.leave(ctx, name, g, t); ok {
			_, _ = m.ReleaseKind(context.WithoutCancel(ctx), g.Kind, name, l.Token)
		}
	}
	for {
		select {
		case n := <-notices:
			switch n.kind {
			case heard:
				return m.queueGranted(ctx, queuedLease(name, g, t, n.fence, base.Add(time.Duration(n.at)*time.Millisecond)), g, placed)
			case held:
				// Granted, and the message is late or was lost.
				return m.queueGranted(ctx, heldLease(name, g, t, n), g, placed)
			case queued:
				base = later(base, redisBase(n.sent, n.now))
			case lapsed:
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
			if l, ok := m.leave(ctx, name, g, t); ok {
				return m.queueGranted(ctx, l, g, placed)
			}
			return m.tryAcquire(ctx, name, g, modeContended, nil)
		case <-m.stopWaiting:
			giveBack()
			return Lease{}, errShuttingDown
		case <-ctx.Done():
			giveBack()
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
	if g.Kind == KindLock && g.Mode == Exclusive {
		m.expiries.arm(l) // as TryAcquire does
	}
	if !m.waitsReplicas() {
		return l, nil
	}
	_, acked, err := m.evalAcked(ctx, m.nodes[0], m.sc.queue, l.Name, m.keys(l.Name), m.argvSpec(l.Name, l.Token, 0, "", "", spec{}))
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
