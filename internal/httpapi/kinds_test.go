package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// Semaphores, shared locks, fair queues and lock-delays over HTTP. Every
// answer goes through the OpenAPI-validating client (call).

// acquireSemaphore takes a permit of name on r and fails the test unless
// it is granted.
func (r *replica) acquireSemaphore(t testing.TB, name, body string) leaseJSON {
	t.Helper()
	return decodeOK[leaseJSON](t, "acquire semaphore "+name, post(t, r.url+"/v1/semaphores/"+name+"/acquire", body))
}

// semaphore is GET /v1/semaphores/{name} on r.
func (r *replica) semaphore(t testing.TB, name string) semaphoreJSON {
	t.Helper()
	return decodeOK[semaphoreJSON](t, "get semaphore "+name, get(t, r.url+"/v1/semaphores/"+name))
}

// refusal decodes an error answer, failing the test unless it has status
// and code.
func (r response) refusal(t testing.TB, status int, code string) errorBody {
	t.Helper()
	var e errorBody
	if r.json(t, &e); r.status != status || e.Error.Code != code {
		t.Fatalf("got %d %s, want %d %s", r.status, r.body, status, code)
	}
	return e
}

// fences are the holders' fences, in order.
func fences(hs []holderJSON) []int64 {
	var out []int64
	for _, h := range hs {
		out = append(out, h.Fence)
	}
	return out
}

// keysOf are the Redis keys that mention name.
func keysOf(t *testing.T, c *cluster, name string) []string {
	t.Helper()
	var out []string
	for _, k := range keys(t, c) {
		if strings.Contains(k, name) {
			out = append(out, k)
		}
	}
	return out
}

func TestSemaphoreCycle(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]

	var permits []leaseJSON
	for i := range 3 {
		l := c.replicas[i%2].acquireSemaphore(t, "pool", `{"limit":3,"ttl":"20s","owner":"w`+strconv.Itoa(i)+`"}`)
		if l.Name != "pool" || l.Kind != lock.KindSemaphore || l.Limit != 3 || l.Mode != "" || !tokenPattern.MatchString(l.Token) ||
			l.TTLMS < 19_000 || (i > 0 && l.Fence <= permits[i-1].Fence) {
			t.Fatalf("permit %d: %+v", i, l)
		}
		permits = append(permits, l)
	}
	want := []int64{permits[0].Fence, permits[1].Fence, permits[2].Fence}

	// A fourth is refused, with every holder, the limit and Retry-After.
	resp := post(t, b.url+"/v1/semaphores/pool/acquire", `{"limit":3,"owner":"w3"}`)
	e := resp.refusal(t, http.StatusConflict, "locked")
	if !slices.Equal(fences(e.Holders), want) || e.Limit == nil || *e.Limit != 3 || e.Mode != nil ||
		e.Queue == nil || *e.Queue != 0 || e.Holder.Fence != permits[2].Fence || e.Holder.Mode != "" ||
		resp.header.Get("Retry-After") != "20" {
		t.Errorf("fourth permit: Retry-After %q, %s", resp.header.Get("Retry-After"), resp.body)
	}
	// Another limit than the holders' is refused with theirs.
	resp = post(t, a.url+"/v1/semaphores/pool/acquire", `{"limit":4}`)
	if e := resp.refusal(t, http.StatusConflict, "limit_mismatch"); e.Limit == nil || *e.Limit != 3 || resp.header.Get("Retry-After") != "" {
		t.Errorf("limit 4: %v %s", resp.header, resp.body)
	}

	got := a.semaphore(t, "pool")
	if !got.Held || got.Kind != lock.KindSemaphore || got.Limit != 3 || got.Queue != 0 || got.DelayUntil != "" ||
		!slices.Equal(fences(got.Holders), want) || got.Holders[1].Owner != "w1" || got.Holders[1].TTLMS < 19_000 {
		t.Errorf("GET: %+v", got)
	}
	raw := get(t, b.url+"/v1/semaphores/pool")
	for _, p := range permits {
		if strings.Contains(string(raw.body), p.Token) {
			t.Fatalf("GET shows a token: %s", raw.body)
		}
	}

	// The name is a semaphore: every lock route says so.
	fence := strconv.FormatInt(permits[0].Fence, 10)
	for _, rq := range []struct{ method, path, body string }{
		{"GET", "/v1/locks/pool", ""},
		{"POST", "/v1/locks/pool/acquire", `{"owner":"locker"}`},
		{"POST", "/v1/locks/pool/acquire", `{"mode":"shared","wait":"100ms"}`},
		{"POST", "/v1/locks/pool/extend", tokenBody(permits[0].Token)},
		{"POST", "/v1/locks/pool/release", tokenBody(permits[0].Token)},
		{"POST", "/v1/locks/pool/check", `{"fence":` + fence + `}`},
	} {
		resp := call(t, context.Background(), rq.method, a.url+rq.path, rq.body)
		if e := resp.refusal(t, http.StatusConflict, "kind_mismatch"); e.Kind != lock.KindSemaphore ||
			!strings.Contains(e.Error.Message, "/v1/semaphores/pool") {
			t.Errorf("%s %s: %s", rq.method, rq.path, resp.body)
		}
	}

	// Extend one permit on the other replica: its answer has the limit.
	resp = post(t, b.url+"/v1/semaphores/pool/extend", `{"token":"`+permits[0].Token+`","ttl":"1m"}`)
	var ext leaseJSON
	if resp.json(t, &ext); resp.status != http.StatusOK || ext.Kind != lock.KindSemaphore || ext.Limit != 3 ||
		ext.Mode != "" || ext.Fence != permits[0].Fence || ext.TTLMS < 59_000 || ext.Owner != "w0" {
		t.Fatalf("extend: %d %s", resp.status, resp.body)
	}
	if resp := post(t, a.url+"/v1/semaphores/pool/check", `{"fence":`+fence+`}`); resp.status != http.StatusOK {
		t.Errorf("check of a live permit: %d %s", resp.status, resp.body)
	}

	// Listing shows the semaphore, with its limit and holders.
	resp = get(t, b.url+"/v1/locks?prefix=pool")
	var l listJSON
	if resp.json(t, &l); len(l.Locks) != 1 {
		t.Fatalf("list: %s", resp.body)
	}
	if en := l.Locks[0]; en.Name != "pool" || en.Kind != lock.KindSemaphore || en.Limit == nil || *en.Limit != 3 || en.Mode != nil ||
		en.Owner != "w2" || en.Fence != permits[2].Fence || !slices.Equal(fences(en.Holders), want) {
		t.Errorf("listed: %s", resp.body)
	}

	// Release: the permit's fence is stale at once, its token holds nothing.
	if resp := post(t, a.url+"/v1/semaphores/pool/release", tokenBody(permits[1].Token)); resp.status != http.StatusNoContent {
		t.Fatalf("release: %d %s", resp.status, resp.body)
	}
	resp = post(t, b.url+"/v1/semaphores/pool/check", `{"fence":`+strconv.FormatInt(permits[1].Fence, 10)+`}`)
	if e := resp.refusal(t, http.StatusConflict, "stale_fence"); e.CurrentFence == nil || *e.CurrentFence != permits[2].Fence {
		t.Errorf("check of a released permit: %s", resp.body)
	}
	post(t, b.url+"/v1/semaphores/pool/release", tokenBody(permits[1].Token)).refusal(t, http.StatusConflict, "not_holder")
	post(t, b.url+"/v1/semaphores/pool/extend", tokenBody(permits[1].Token)).refusal(t, http.StatusConflict, "not_holder")
	// Its place is free again.
	fourth := b.acquireSemaphore(t, "pool", `{"limit":3,"owner":"w3"}`)
	for _, p := range []leaseJSON{permits[0], permits[2], fourth} {
		if resp := post(t, a.url+"/v1/semaphores/pool/release", tokenBody(p.Token)); resp.status != http.StatusNoContent {
			t.Fatalf("release: %d %s", resp.status, resp.body)
		}
	}
	if got := b.semaphore(t, "pool"); got.Held || got.Limit != 0 || len(got.Holders) != 0 || got.Holders == nil {
		t.Errorf("after the last release: %+v", got)
	}
	if k := keysOf(t, c, "pool"); len(k) != 0 {
		t.Errorf("keys left in Redis: %v", k)
	}
	// Free, the name can be a lock again.
	a.acquire(t, "pool", "")
	b.semaphore(t, "other") // a free name reads as a free semaphore
	resp = get(t, b.url+"/v1/semaphores/pool")
	if e := resp.refusal(t, http.StatusConflict, "kind_mismatch"); e.Kind != lock.KindLock {
		t.Errorf("GET semaphore on a lock: %s", resp.body)
	}
	resp = post(t, b.url+"/v1/semaphores/pool/acquire", `{"limit":2}`)
	if e := resp.refusal(t, http.StatusConflict, "kind_mismatch"); e.Kind != lock.KindLock || resp.header.Get("Retry-After") != "" {
		t.Errorf("semaphore acquire on a lock: %s", resp.body)
	}
}

func TestSharedAndExclusive(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]

	r1 := a.acquire(t, "doc", `{"mode":"shared","owner":"reader-1","ttl":"20s"}`)
	r2 := b.acquire(t, "doc", `{"mode":"shared","owner":"reader-2","ttl":"10s"}`)
	if r1.Kind != lock.KindLock || r1.Mode != lock.Shared || r1.Limit != 0 || r2.Mode != lock.Shared || r2.Fence <= r1.Fence {
		t.Fatalf("shared leases: %+v %+v", r1, r2)
	}
	// A writer is refused: the holders, their mode, and Retry-After the
	// first holder's deadline.
	resp := post(t, a.url+"/v1/locks/doc/acquire", `{"owner":"writer"}`)
	e := resp.refusal(t, http.StatusConflict, "locked")
	if e.Mode == nil || *e.Mode != lock.Shared || e.Limit != nil || !slices.Equal(fences(e.Holders), []int64{r1.Fence, r2.Fence}) ||
		e.Holders[0].Mode != lock.Shared || e.Holders[0].Owner != "reader-1" || e.Holder.Fence != r2.Fence ||
		resp.header.Get("Retry-After") != "10" {
		t.Errorf("writer: Retry-After %q, %s", resp.header.Get("Retry-After"), resp.body)
	}
	got := b.inspect(t, "doc")
	if !got.Held || got.Kind != lock.KindLock || got.Mode != lock.Shared || got.Owner != "reader-2" || got.Fence != r2.Fence ||
		!slices.Equal(fences(got.Holders), []int64{r1.Fence, r2.Fence}) || got.Holders[1].Mode != lock.Shared || got.Queue != 0 {
		t.Errorf("GET: %+v", got)
	}
	// Extending keeps the mode.
	resp = post(t, b.url+"/v1/locks/doc/extend", tokenBody(r1.Token))
	var ext leaseJSON
	if resp.json(t, &ext); resp.status != http.StatusOK || ext.Mode != lock.Shared || ext.Kind != lock.KindLock || ext.Fence != r1.Fence {
		t.Errorf("extend: %d %s", resp.status, resp.body)
	}
	// It is a lock: the semaphore routes say so.
	if e := post(t, a.url+"/v1/semaphores/doc/acquire", `{"limit":2}`).refusal(t, http.StatusConflict, "kind_mismatch"); e.Kind != lock.KindLock {
		t.Errorf("semaphore on a shared lock: %+v", e)
	}

	// A waiting writer stops new shared grants: it takes a place in the
	// queue, and a third reader is refused behind it.
	writer := make(chan response, 1)
	go func() { writer <- post(t, b.url+"/v1/locks/doc/acquire", `{"owner":"writer","wait":"20s"}`) }()
	waitQueue(t, a, "doc", 1)
	resp = post(t, a.url+"/v1/locks/doc/acquire", `{"mode":"shared","owner":"reader-3"}`)
	if e := resp.refusal(t, http.StatusConflict, "locked"); e.Queue == nil || *e.Queue != 1 {
		t.Errorf("a reader behind a waiting writer: %s", resp.body)
	}
	// The readers leave; the writer holds the lock, alone.
	for _, rl := range []leaseJSON{r1, r2} {
		if resp := post(t, a.url+"/v1/locks/doc/release", tokenBody(rl.Token)); resp.status != http.StatusNoContent {
			t.Fatalf("release: %d %s", resp.status, resp.body)
		}
	}
	resp = <-writer
	var w leaseJSON
	if resp.json(t, &w); resp.status != http.StatusOK || w.Mode != lock.Exclusive || w.Owner != "writer" || w.Fence <= r2.Fence || w.WaitedMS <= 0 {
		t.Fatalf("writer: %d %s", resp.status, resp.body)
	}
	if got := a.inspect(t, "doc"); got.Mode != lock.Exclusive || len(got.Holders) != 1 || got.Owner != "writer" || got.Queue != 0 {
		t.Errorf("GET after the hand-over: %+v", got)
	}
	resp = get(t, b.url+"/v1/locks?prefix=doc")
	var l listJSON
	if resp.json(t, &l); len(l.Locks) != 1 || l.Locks[0].Mode == nil || *l.Locks[0].Mode != lock.Exclusive ||
		l.Locks[0].Kind != lock.KindLock || l.Locks[0].Limit != nil {
		t.Errorf("list: %s", resp.body)
	}
	post(t, b.url+"/v1/locks/doc/acquire", `{"mode":"shared"}`).refusal(t, http.StatusConflict, "locked")
}

// waitQueue waits until GET on r shows n waiters in name's queue.
func waitQueue(t *testing.T, r *replica, name string, n int) {
	t.Helper()
	var got lockJSON
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got = r.inspect(t, name); got.Queue == n {
			return
		}
	}
	t.Fatalf("queue of %s: %+v, want %d waiting", name, got, n)
}

// TestFairWaitersAcrossReplicas: fair waiters on two replicas, over one
// Redis, are granted the lock in the order they arrived, and nobody jumps
// the queue.
func TestFairWaitersAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]
	prev := a.acquire(t, "turns", `{"ttl":"30s","owner":"first"}`)

	const waiters = 4
	results := make([]chan response, waiters)
	for i := range waiters {
		r := c.replicas[(i+1)%2] // b, a, b, a
		results[i] = make(chan response, 1)
		body := fmt.Sprintf(`{"fair":true,"wait":"20s","ttl":"10s","owner":"w%d"}`, i)
		go func() { results[i] <- post(t, r.url+"/v1/locks/turns/acquire", body) }()
		waitQueue(t, a, "turns", i+1)
	}
	// While the queue exists nobody jumps it: an acquire without wait is
	// refused at once, and says how long the queue is.
	resp := post(t, b.url+"/v1/locks/turns/acquire", `{"owner":"jumper"}`)
	if e := resp.refusal(t, http.StatusConflict, "locked"); e.Queue == nil || *e.Queue != waiters || e.Holder.Owner != "first" {
		t.Errorf("queue jumper: %s", resp.body)
	}
	got := b.inspect(t, "turns")
	if got.Queue != waiters || got.Owner != "first" || len(got.Waiters) != waiters {
		t.Errorf("GET: %+v", got)
	}
	for i, w := range got.Waiters { // in arrival order, by owner
		if w.Owner != "w"+strconv.Itoa(i) || w.Mode != lock.Exclusive {
			t.Errorf("waiter %d: %+v, want w%d exclusive", i, w, i)
		}
	}

	// Each release hands the lock to the next in arrival order, whichever
	// replica it waits on.
	for i := range waiters {
		if resp := post(t, c.replicas[i%2].url+"/v1/locks/turns/release", tokenBody(prev.Token)); resp.status != http.StatusNoContent {
			t.Fatalf("release %d: %d %s", i, resp.status, resp.body)
		}
		resp := <-results[i]
		var l leaseJSON
		if resp.json(t, &l); resp.status != http.StatusOK || l.Owner != "w"+strconv.Itoa(i) || l.Fence <= prev.Fence ||
			l.Mode != lock.Exclusive || l.Kind != lock.KindLock || l.QueuedMS < 1 {
			t.Fatalf("waiter %d: %d %s", i, resp.status, resp.body)
		}
		prev = l
	}
	if resp := post(t, a.url+"/v1/locks/turns/release", tokenBody(prev.Token)); resp.status != http.StatusNoContent {
		t.Fatalf("last release: %d %s", resp.status, resp.body)
	}
	if k := keysOf(t, c, "turns"); len(k) != 0 {
		t.Errorf("keys left in Redis: %v", k)
	}
}

var timeMSPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestLockDelay(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, Options{})
	r := c.replicas[0]

	l := r.acquire(t, "delayed", `{"ttl":"200ms","lock_delay":"3s","owner":"dies"}`)
	if l.Mode != lock.Exclusive {
		t.Fatalf("lease: %+v", l)
	}
	time.Sleep(400 * time.Millisecond) // the holder dies: its lease expires
	resp := post(t, r.url+"/v1/locks/delayed/acquire", `{"owner":"next"}`)
	e := resp.refusal(t, http.StatusConflict, "lock_delay")
	until, err := time.Parse(time.RFC3339, e.DelayUntil)
	if err != nil || !timeMSPattern.MatchString(e.DelayUntil) {
		t.Fatalf("delay_until %q: %v", e.DelayUntil, err)
	}
	if left := time.Until(until); left < 2*time.Second || left > 3*time.Second {
		t.Errorf("delay_until %v is %v away, want about 2.8s", until, left)
	}
	if ra := resp.header.Get("Retry-After"); ra != "3" {
		t.Errorf("Retry-After %q, want 3", ra)
	}
	if e.Holder != nil || e.Holders != nil || e.Kind != "" {
		t.Errorf("lock_delay body: %s", resp.body)
	}
	got := r.inspect(t, "delayed")
	if got.Held || got.Mode != "" || len(got.Holders) != 0 || got.DelayUntil == "" || !timeMSPattern.MatchString(got.DelayUntil) {
		t.Errorf("GET during the delay: %+v", got)
	}
	if d, _ := time.Parse(time.RFC3339, got.DelayUntil); d.Sub(until).Abs() > 50*time.Millisecond {
		t.Errorf("GET says the delay ends at %v, the refusal %v", d, until)
	}
	// A waiter is granted the name once the delay is over, not before.
	resp = post(t, r.url+"/v1/locks/delayed/acquire", `{"owner":"next","wait":"10s"}`)
	var next leaseJSON
	if resp.json(t, &next); resp.status != http.StatusOK || next.Fence <= l.Fence || time.Now().Before(until.Add(-50*time.Millisecond)) {
		t.Fatalf("waiter: %d %s at %v, delay until %v", resp.status, resp.body, time.Now(), until)
	}

	// A release ends the lease without any delay, for a semaphore too.
	held := r.acquire(t, "released", `{"ttl":"10s","lock_delay":"5s"}`)
	if resp := post(t, r.url+"/v1/locks/released/release", tokenBody(held.Token)); resp.status != http.StatusNoContent {
		t.Fatal(resp.status)
	}
	r.acquire(t, "released", "")
	permit := r.acquireSemaphore(t, "permits", `{"limit":1,"ttl":"10s","lock_delay":"5s"}`)
	if resp := post(t, r.url+"/v1/semaphores/permits/release", tokenBody(permit.Token)); resp.status != http.StatusNoContent {
		t.Fatal(resp.status)
	}
	r.acquireSemaphore(t, "permits", `{"limit":1}`)

	// A permit that expires closes its semaphore too.
	r.acquireSemaphore(t, "closing", `{"limit":2,"ttl":"100ms","lock_delay":"2s"}`)
	time.Sleep(250 * time.Millisecond)
	resp = post(t, r.url+"/v1/semaphores/closing/acquire", `{"limit":2}`)
	if e := resp.refusal(t, http.StatusConflict, "lock_delay"); resp.header.Get("Retry-After") != "2" || e.DelayUntil == "" {
		t.Errorf("semaphore in a delay: Retry-After %q, %s", resp.header.Get("Retry-After"), resp.body)
	}
	if got := r.semaphore(t, "closing"); got.Held || got.DelayUntil == "" || got.Limit != 2 {
		t.Errorf("GET semaphore during the delay: %+v", got)
	}
}

// TestQuorumModeRefusesRicherGrants: over independent masters, shared
// locks, semaphores, fair waits and lock-delays are 400 unsupported, and
// leave nothing in Redis; plain exclusive locks still work.
func TestQuorumModeRefusesRicherGrants(t *testing.T) {
	t.Parallel()
	var (
		nodes []*redis.Options
		srvs  []*redistest.Server
	)
	for range 3 {
		srv := redistest.Start(t, redistest.Options{Password: "pw"})
		srvs = append(srvs, srv)
		nodes = append(nodes, &redis.Options{Addr: srv.Addr, Password: "pw", DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	}
	r := startReplica(t, lock.Config{Nodes: nodes}, clusterOptions{}, httptest.NewUnstartedServer(nil), func() {
		for _, s := range srvs {
			waitSubscribed(t, s.Addr)
		}
	})
	for _, tc := range []struct{ name, path, body string }{
		{"shared", "/v1/locks/q/acquire", `{"mode":"shared"}`},
		{"fair", "/v1/locks/q/acquire", `{"fair":true,"wait":"1s"}`},
		{"lock-delay", "/v1/locks/q/acquire", `{"lock_delay":"1s"}`},
		{"semaphore", "/v1/semaphores/q/acquire", `{"limit":2}`},
		{"waiting semaphore", "/v1/semaphores/q/acquire", `{"limit":2,"wait":"1s"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, r.url+tc.path, tc.body)
			if e := resp.refusal(t, http.StatusBadRequest, "unsupported"); !strings.Contains(e.Error.Message, "quorum") {
				t.Errorf("message %q does not say why", e.Error.Message)
			}
		})
	}
	// A bad mode is still invalid first.
	post(t, r.url+"/v1/locks/q/acquire", `{"mode":"bogus"}`).refusal(t, http.StatusBadRequest, "invalid_argument")
	for _, s := range srvs {
		if k, err := s.Client(t, 0).Keys(context.Background(), "lock:*").Result(); err != nil || len(k) != 0 {
			t.Errorf("%s: keys %v (%v)", s.Addr, k, err)
		}
	}

	// Exclusive locks are granted as before, once the new nodes vote
	// (they must have been up a moment).
	for deadline := time.Now().Add(15 * time.Second); get(t, r.url+"/readyz").status != http.StatusOK; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the quorum never became ready")
		}
	}
	if got := r.semaphore(t, "q"); got.Held || got.Kind != lock.KindSemaphore {
		t.Errorf("GET semaphore: %+v", got)
	}
	l := r.acquire(t, "q", `{"ttl":"5s"}`)
	if l.Kind != lock.KindLock || l.Mode != lock.Exclusive {
		t.Fatalf("exclusive lock in quorum mode: %+v", l)
	}
	if got := r.inspect(t, "q"); !got.Held || got.Mode != lock.Exclusive || len(got.Holders) != 1 || got.Holders[0].Fence != l.Fence {
		t.Errorf("GET: %+v", got)
	}
}
