package lock

import (
	"container/heap"
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// The expiry watcher: the replica that granted a lease reports its expiry,
// once, when the lease ran out rather than being released. Keyspace
// notifications were not used: they need CONFIG SET (which lockd's ACL rule
// leaves out), are lost while a replica reconnects, and reach every replica
// at once.
//
// Each grant made here is kept in a heap by the time its key expires.
// Releases here, and releases elsewhere (which are always announced on
// ReleasedChannel with their fence), take it out. When its time comes, one script per lease,
// pipelined in batches, either finds the grant still there (extended,
// maybe elsewhere: look again then) or writes the "expired" event.

// expiryGrace is how long after a key's expiry the watcher looks: long
// enough for a release made just before to be announced first.
const expiryGrace = 20 * time.Millisecond

// expiryBatch bounds the leases looked at in one round trip.
const expiryBatch = 500

type watched struct {
	name, token, owner string
	fence              int64
	due                time.Time
	index              int // in the heap
}

type expiries struct {
	mu     sync.Mutex
	heap   dueHeap
	byName map[string]*watched
	wake   chan struct{}
}

func newExpiries() *expiries {
	return &expiries{byName: map[string]*watched{}, wake: make(chan struct{}, 1)}
}

// arm watches a lease granted here; a lock has one grant at a time, so it
// replaces whatever was watched for the name.
func (e *expiries) arm(l Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if old := e.byName[l.Name]; old != nil {
		heap.Remove(&e.heap, old.index)
	}
	w := &watched{name: l.Name, token: l.Token, owner: l.Owner, fence: l.Fence, due: time.Now().Add(l.TTL + expiryGrace)}
	e.byName[l.Name] = w
	heap.Push(&e.heap, w)
	if w.index == 0 {
		e.poke()
	}
}

// extended moves the look at a lease extended here to its new expiry.
func (e *expiries) extended(l Lease) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w := e.byName[l.Name]; w != nil && w.fence == l.Fence {
		w.due = time.Now().Add(l.TTL + expiryGrace)
		heap.Fix(&e.heap, w.index)
	}
}

// disarm stops watching name's grant of fence, released.
func (e *expiries) disarm(name string, fence int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if w := e.byName[name]; w != nil && w.fence == fence {
		heap.Remove(&e.heap, w.index)
		delete(e.byName, name)
	}
}

// watching reports whether this replica watches the grant of token on
// name: it granted it, so the release need not be announced for it.
func (e *expiries) watching(name, token string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	w := e.byName[name]
	return w != nil && w.token == token
}

func (e *expiries) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// due takes up to expiryBatch leases whose time has come, and says how
// long until the next one otherwise.
func (e *expiries) due(now time.Time) ([]*watched, time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*watched
	for len(e.heap) > 0 && len(out) < expiryBatch {
		w := e.heap[0]
		if w.due.After(now) {
			break
		}
		heap.Pop(&e.heap)
		delete(e.byName, w.name)
		out = append(out, w)
	}
	if len(out) > 0 || len(e.heap) == 0 {
		return out, time.Hour
	}
	return nil, e.heap[0].due.Sub(now)
}

// rearm watches w again after d, unless the name was granted here since.
func (e *expiries) rearm(w *watched, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.byName[w.name] != nil {
		return
	}
	w.due = time.Now().Add(d + expiryGrace)
	e.byName[w.name] = w
	heap.Push(&e.heap, w)
}

// watchExpiries runs the watcher until ctx ends.
func (m *Manager) watchExpiries(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		batch, wait := m.expiries.due(time.Now())
		if len(batch) > 0 {
			m.lookAtExpired(ctx, batch)
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-m.expiries.wake:
		case <-timer.C:
		}
	}
}

// lookAtExpired runs the expire script for each lease of batch on every
// usable node, one pipeline per node. A lease still held somewhere (by a
// majority, in quorum mode) is looked at again when it would expire now.
func (m *Manager) lookAtExpired(ctx context.Context, batch []*watched) {
	got, _ := fanOut(ctx, m, 2*time.Second, func(ctx context.Context, n *node) ([]int64, error) {
		pipe := n.client.Pipeline()
		cmds := make([]*redis.Cmd, len(batch))
		for i, w := range batch {
			cmds[i] = m.sc.expire.EvalSha(ctx, pipe, m.keys(w.name), m.argv(w.name, w.token, w.fence, w.owner, "")...)
		}
		if _, err := pipe.Exec(ctx); err != nil && !redis.HasErrorPrefix(err, "NOSCRIPT") {
			return nil, err
		}
		out := make([]int64, len(batch))
		for i, c := range cmds {
			v, err := c.Int64()
			if err != nil {
				v = unknownPTTL
			}
			out[i] = v
		}
		return out, nil
	})
	for i, w := range batch {
		held, gone, left := 0, 0, time.Duration(0)
		for _, r := range got {
			switch pttl := r.val[i]; {
			case pttl >= 0:
				held++
				left = max(left, ms(pttl))
			case pttl == -1:
				gone++
			}
		}
		switch {
		case held >= m.quorum():
			m.expiries.rearm(w, left)
		case gone < m.quorum():
			m.expiries.rearm(w, time.Second) // too few answers to tell: later
		}
	}
}

// unknownPTTL marks an expire script that got no answer.
const unknownPTTL = -2

// dueHeap orders watched leases by due time.
type dueHeap []*watched

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	w := x.(*watched)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *dueHeap) Pop() any {
	old := *h
	w := old[len(old)-1]
	*h = old[:len(old)-1]
	return w
}
