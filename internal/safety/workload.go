package safety

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/safety/check"
)

// ClientConfig describes one sequential client. It travels as JSON to a
// client process, so every field is plain data.
type ClientConfig struct {
	ID     int
	Lockds []string // base URLs of the lockd instances
	Pin    int      // index into Lockds, or -1 to alternate on every call
	Store  string   // base URL of the fenced store
	Locks  []string // names this client picks from (hot ones repeated to weigh them)
	TTL    time.Duration
	Wait   time.Duration
	Base   int64 // the harness clock's CLOCK_MONOTONIC base
	Seed   uint64

	// Careless clients check their lease once, right after the grant,
	// announce the hold and then write without checking again: the client
	// a pause catches between its check and its write.
	Careless bool

	// Uses says how to ask for each name; a name without an entry is a
	// plain exclusive lock.
	Uses map[string]Use `json:",omitempty"`
}

// Use is how the clients ask for one name (doc/KINDS.md). The zero value is
// a plain exclusive lock, the only kind before issue 16.
type Use struct {
	// Limit > 0 makes the name a semaphore of that limit: acquire, extend
	// and release go to /v1/semaphores.
	Limit int `json:",omitempty"`
	// Shared is the chance that an acquire of the lock asks for
	// "mode":"shared"; the others ask for "exclusive".
	Shared float64 `json:",omitempty"`
	// Fair makes every acquire wait in the name's fair queue.
	Fair bool `json:",omitempty"`
	// LockDelay is asked for on every acquire.
	LockDelay time.Duration `json:",omitempty"`
	// Abandon is the chance that a holder never releases its lease and
	// leaves it to expire, as a holder that died would: with a LockDelay,
	// that closes the name for the delay.
	Abandon float64 `json:",omitempty"`
}

// Workload is how a scenario's clients use the names: hot-i takes
// Uses[i % len(Uses)] and own-k Uses[k % len(Uses)], so a workload of one
// Use applies it everywhere and one of several mixes them by name. No Uses
// is the plain exclusive locks of every scenario before issue 16.
type Workload struct {
	Name string // shown in front of the scenario's name
	Uses []Use
}

// uses maps every name of allLocks to its Use.
func (w Workload) uses() map[string]Use {
	if len(w.Uses) == 0 {
		return nil
	}
	m := make(map[string]Use)
	for i, lock := range Hot {
		m[lock] = w.Uses[i%len(w.Uses)]
	}
	for k := range inProcess + 1 {
		m[fmt.Sprintf("own-%d", k)] = w.Uses[k%len(w.Uses)]
	}
	return m
}

// maxDelay is the longest lock-delay the workload asks for: a name can stay
// closed that long after a lease expires.
func (w Workload) maxDelay() time.Duration {
	var d time.Duration
	for _, u := range w.Uses {
		d = max(d, u.LockDelay)
	}
	return d
}

// Timeouts of one HTTP call. They stay well below the TTL, so a client that
// gives up still has time to learn it lost the lease before it expires; an
// acquire may also wait, so it gets the wait on top.
const (
	callTimeout  = 500 * time.Millisecond
	leaseMargin  = 250 * time.Millisecond // stop writing this long before the lease ends
	extendChance = 0.1
)

// Client runs one sequential client: it never has two calls in flight, which
// the checkers rely on.
type Client struct {
	cfg   ClientConfig
	clock Clock
	rng   *rand.Rand
	http  *http.Client
	next  int // the instance for the next call when alternating

	record func(check.Op)
	// held is called when a careless client got a lease and is about to
	// write; the harness pauses the process then.
	held func(lock string, fence int64)
}

// NewClient makes a client that reports every call to record.
func NewClient(cfg ClientConfig, record func(check.Op)) *Client {
	return &Client{
		cfg:    cfg,
		clock:  Clock{Base: cfg.Base},
		rng:    rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.ID))),
		http:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}},
		next:   cfg.ID,
		record: record,
		held:   func(string, int64) {},
	}
}

// Close drops idle connections, so their goroutines end with the run.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Run repeats lock-write-release cycles, each started by a tick of pace,
// until ctx ends. A cycle in progress finishes: the calls themselves do not
// use ctx, so stopping the run never turns a call into an unknown outcome.
func (c *Client) Run(ctx context.Context, pace <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-pace:
		}
		c.cycle()
	}
}

// lease is what a client knows of a grant.
type lease struct {
	lock  string
	token string
	fence int64
	end   time.Duration // on the harness clock: send time + waited + validity
	// exclusive is a lock held alone: only such a holder uses the fenced
	// store (see cycle).
	exclusive bool
}

func (c *Client) cycle() {
	lock := c.cfg.Locks[c.rng.IntN(len(c.cfg.Locks))]
	use := c.cfg.Uses[lock]
	l, outcome := c.acquire(lock, c.cfg.Wait, use.Shared > 0 && c.rng.Float64() < use.Shared)
	switch outcome {
	case check.Refused:
		return // still held after the wait: try again on the next tick
	case check.Unknown:
		// Back off, as a real client would: a dead instance answers at
		// once, and every unknown outcome widens the linearizability
		// check's search.
		time.Sleep(time.Duration(200+c.rng.IntN(200)) * time.Millisecond)
		return
	}
	// Only an exclusive holder writes to the store. The store refuses a
	// fence below the highest it accepted, which is right for one holder
	// at a time: each new one has a higher fence than all before it. Shared
	// holders and a semaphore's permits hold at once with different
	// fences, so the store would refuse the lower ones' writes though
	// their leases are valid, and an increment's read by one would lock out
	// the others. They hold the name (a little longer, below) and extend
	// it as often, without touching the store: the store and counter
	// checkers then judge the exclusive holders alone, as before.
	if c.cfg.Careless && l.exclusive {
		if c.clock.Now() > l.end-leaseMargin {
			c.Release(l)
			return
		}
		c.held(l.lock, l.fence)
		time.Sleep(300 * time.Millisecond) // the window in which the harness pauses us
	}
	// A reader or a permit's holder works longer than a writer's few
	// writes, so that holders overlap: a semaphore reaches its limit, and a
	// writer waits behind readers.
	pause := 50
	if !l.exclusive {
		pause = 150
	}
	steps := 1 + c.rng.IntN(3)
	for i := range steps {
		time.Sleep(time.Duration(c.rng.IntN(pause)) * time.Millisecond)
		if i == 1 && c.rng.Float64() < extendChance {
			if !c.extend(&l) {
				return // the lease is gone: nothing left to release
			}
		}
		if !l.exclusive {
			continue
		}
		if !c.cfg.Careless && c.clock.Now() > l.end-leaseMargin {
			break // too close to the end of the lease to start a write
		}
		kind := check.KindWrite
		if i == 0 {
			kind = check.KindIncrement
		}
		c.storeWrite(kind, l)
	}
	if use.Abandon > 0 && c.rng.Float64() < use.Abandon {
		return // the lease expires: a holder that died, for the lock-delay
	}
	c.Release(l)
}

// Acquire asks for lock as the name's Use says, exclusively when it is a
// lock, waiting up to wait, and records the call. The lease is valid only
// when the outcome is check.OK.
func (c *Client) Acquire(lock string, wait time.Duration) (lease, check.Outcome) {
	return c.acquire(lock, wait, false)
}

// acquire is Acquire, holding a lock shared when shared is set.
func (c *Client) acquire(lock string, wait time.Duration, shared bool) (lease, check.Outcome) {
	use := c.cfg.Uses[lock]
	body := map[string]any{"ttl": c.cfg.TTL.String(), "wait": wait.String(), "owner": fmt.Sprintf("client-%d", c.cfg.ID)}
	op := check.Op{Client: c.cfg.ID, Kind: check.KindAcquire, Lock: lock, TTL: c.cfg.TTL,
		Limit: use.Limit, LockDelay: use.LockDelay}
	switch {
	case use.Limit > 0:
		body["limit"] = use.Limit
	case use.Shared > 0:
		// Both modes are sent by name where the name is used both ways.
		op.Mode = check.ModeExclusive
		if shared {
			op.Mode = check.ModeShared
		}
		body["mode"] = op.Mode
	}
	if use.Fair {
		body["fair"] = true
	}
	if use.LockDelay > 0 {
		body["lock_delay"] = use.LockDelay.String()
	}
	var ans leaseAnswer
	c.call(&op, c.path(lock, "acquire"), body, wait+callTimeout, &ans)
	if op.Outcome == check.OK {
		op.Token, op.Fence = ans.Token, ans.Fence
		op.Validity = time.Duration(ans.TTLMs) * time.Millisecond
		op.Waited = time.Duration(ans.WaitedMs) * time.Millisecond
		op.Queued = time.Duration(ans.QueuedMs) * time.Millisecond
	}
	// Fair is where the wait was: asked for, or queued by lockd anyway (a
	// waiter of a name whose queue exists, or an exclusive waiter held off
	// by shared holders), which queued_ms says. Every waiter in a queue is
	// granted in the queue's order, so FairOrder judges them all.
	op.Fair = use.Fair || op.Queued > 0
	c.record(op)
	if op.Outcome != check.OK {
		return lease{}, op.Outcome
	}
	return lease{lock: lock, token: ans.Token, fence: ans.Fence, end: op.Call + op.Waited + op.Validity,
		exclusive: use.Limit == 0 && !shared}, check.OK
}

// path is the API path of an operation on lock: under /v1/semaphores for a
// semaphore's name, /v1/locks otherwise.
func (c *Client) path(lock, operation string) string {
	if c.cfg.Uses[lock].Limit > 0 {
		return "/v1/semaphores/" + lock + "/" + operation
	}
	return "/v1/locks/" + lock + "/" + operation
}

// extend pushes the lease's end; false means the lease is lost or in doubt.
func (c *Client) extend(l *lease) bool {
	op := check.Op{Client: c.cfg.ID, Kind: check.KindExtend, Lock: l.lock, Token: l.token, TTL: c.cfg.TTL}
	var ans leaseAnswer
	c.call(&op, c.path(l.lock, "extend"), map[string]string{"token": l.token, "ttl": c.cfg.TTL.String()}, callTimeout, &ans)
	if op.Outcome == check.OK {
		op.Fence = ans.Fence
		op.Validity = time.Duration(ans.TTLMs) * time.Millisecond
		l.end = op.Call + op.Validity
	}
	c.record(op)
	return op.Outcome == check.OK
}

// Release gives the lease back and records the call.
func (c *Client) Release(l lease) {
	op := check.Op{Client: c.cfg.ID, Kind: check.KindRelease, Lock: l.lock, Token: l.token}
	c.call(&op, c.path(l.lock, "release"), map[string]string{"token": l.token}, callTimeout, nil)
	c.record(op)
}

// leaseAnswer is the part of a /v1 lease the clients use.
type leaseAnswer struct {
	Token    string `json:"token"`
	Fence    int64  `json:"fence"`
	TTLMs    int64  `json:"ttl_ms"`
	WaitedMs int64  `json:"waited_ms"`
	// QueuedMs is set on a lease granted from a fair queue: how long
	// before the answer lockd had last seen the wait confirmed there.
	QueuedMs int64 `json:"queued_ms"`
}

// call sends one request to the next instance and fills op's times and
// outcome: 2xx is OK, 400 and 409 are definite refusals, and anything else
// (5xx, a timeout, a broken connection) may or may not have taken effect.
func (c *Client) call(op *check.Op, path string, body any, timeout time.Duration, ans any) {
	base := c.instance()
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	op.Call = c.clock.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		op.Return, op.Outcome = c.clock.Now(), check.Unknown
		return
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		op.Outcome = check.OK
		if ans != nil {
			if err := json.NewDecoder(resp.Body).Decode(ans); err != nil {
				op.Outcome = check.Unknown // granted, but we cannot use it
			}
		}
	case resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusBadRequest:
		op.Outcome = check.Refused
	default:
		op.Outcome = check.Unknown
	}
	op.Return = c.clock.Now()
}

// instance picks the lockd for the next call.
func (c *Client) instance() string {
	if c.cfg.Pin >= 0 {
		return c.cfg.Lockds[c.cfg.Pin]
	}
	c.next++
	return c.cfg.Lockds[c.next%len(c.cfg.Lockds)]
}

// storeWrite writes to the fenced store. The store records the attempt and
// its decision itself, so the answer only matters for a broken store.
func (c *Client) storeWrite(kind string, l lease) {
	b, _ := json.Marshal(writeRequest{Client: c.cfg.ID, Lock: l.lock, Fence: l.fence, Token: l.token, Value: c.rng.Int64N(1000)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.Store+"/"+kind, bytes.NewReader(b))
	resp, err := c.http.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
}
