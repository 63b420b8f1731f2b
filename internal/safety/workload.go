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
}

func (c *Client) cycle() {
	lock := c.cfg.Locks[c.rng.IntN(len(c.cfg.Locks))]
	l, outcome := c.Acquire(lock, c.cfg.Wait)
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
	if c.cfg.Careless {
		if c.clock.Now() > l.end-leaseMargin {
			c.Release(l)
			return
		}
		c.held(l.lock, l.fence)
		time.Sleep(300 * time.Millisecond) // the window in which the harness pauses us
	}
	steps := 1 + c.rng.IntN(3)
	for i := range steps {
		time.Sleep(time.Duration(c.rng.IntN(50)) * time.Millisecond)
		if i == 1 && c.rng.Float64() < extendChance {
			if !c.extend(&l) {
				return // the lease is gone: nothing left to release
			}
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
	c.Release(l)
}

// Acquire asks for lock, waiting up to wait, and records the call. The
// lease is valid only when the outcome is check.OK.
func (c *Client) Acquire(lock string, wait time.Duration) (lease, check.Outcome) {
	body := map[string]string{"ttl": c.cfg.TTL.String(), "wait": wait.String(), "owner": fmt.Sprintf("client-%d", c.cfg.ID)}
	op := check.Op{Client: c.cfg.ID, Kind: check.KindAcquire, Lock: lock, TTL: c.cfg.TTL}
	var ans leaseAnswer
	c.call(&op, "/v1/locks/"+lock+"/acquire", body, wait+callTimeout, &ans)
	if op.Outcome == check.OK {
		op.Token, op.Fence = ans.Token, ans.Fence
		op.Validity = time.Duration(ans.TTLMs) * time.Millisecond
		op.Waited = time.Duration(ans.WaitedMs) * time.Millisecond
	}
	c.record(op)
	if op.Outcome != check.OK {
		return lease{}, op.Outcome
	}
	return lease{lock: lock, token: ans.Token, fence: ans.Fence, end: op.Call + op.Waited + op.Validity}, check.OK
}

// extend pushes the lease's end; false means the lease is lost or in doubt.
func (c *Client) extend(l *lease) bool {
	op := check.Op{Client: c.cfg.ID, Kind: check.KindExtend, Lock: l.lock, Token: l.token, TTL: c.cfg.TTL}
	var ans leaseAnswer
	c.call(&op, "/v1/locks/"+l.lock+"/extend", map[string]string{"token": l.token, "ttl": c.cfg.TTL.String()}, callTimeout, &ans)
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
	c.call(&op, "/v1/locks/"+l.lock+"/release", map[string]string{"token": l.token}, callTimeout, nil)
	c.record(op)
}

// leaseAnswer is the part of a /v1 lease the clients use.
type leaseAnswer struct {
	Token    string `json:"token"`
	Fence    int64  `json:"fence"`
	TTLMs    int64  `json:"ttl_ms"`
	WaitedMs int64  `json:"waited_ms"`
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
