package httpapi

import (
	"context"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var tokenPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{22,}$`) // >= 132 bits of base64

func TestAcquireExtendReleaseAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]

	// No body at all: the defaults, 30s and no waiting.
	before := time.Now()
	l := a.acquire(t, "job", "")
	if l.Name != "job" || l.Fence < 1 || l.Owner != "" || !tokenPattern.MatchString(l.Token) ||
		l.TTLMS < 29_000 || l.TTLMS > 30_000 || l.WaitedMS > 1000 {
		t.Fatalf("default lease %+v", l)
	}
	// Always with milliseconds, as delay_until: "…:05.000Z", never "…:05Z".
	expires, err := time.Parse(time.RFC3339Nano, l.ExpiresAt)
	if exp := before.Add(30 * time.Second); err != nil || !timeMSPattern.MatchString(l.ExpiresAt) ||
		expires.After(exp) || expires.Before(exp.Add(-2*time.Second)) {
		t.Errorf("expires_at %q (%v), want just before %v with milliseconds", l.ExpiresAt, err, exp)
	}

	got := b.inspect(t, "job")
	want := lockJSON{Name: "job", Kind: "lock", Held: true, Owner: "", Fence: l.Fence, TTLMS: got.TTLMS, Mode: "exclusive",
		Holders: []holderJSON{{Owner: "", Fence: l.Fence, TTLMS: got.TTLMS, Mode: "exclusive"}}, Waiters: []waiterJSON{}}
	if !reflect.DeepEqual(got, want) || got.TTLMS < 29_000 {
		t.Errorf("inspect on the other replica: %+v, want %+v", got, want)
	}
	if raw := get(t, b.url+"/v1/locks/job"); strings.Contains(string(raw.body), l.Token) {
		t.Errorf("GET shows the token: %s", raw.body)
	}

	// The token alone extends, on any replica; a new ttl sticks.
	resp := post(t, b.url+"/v1/locks/job/extend", `{"token":"`+l.Token+`","ttl":"1m"}`)
	var ext leaseJSON
	if resp.json(t, &ext); resp.status != http.StatusOK || ext.Token != l.Token || ext.Fence != l.Fence || ext.TTLMS < 59_000 || ext.WaitedMS != 0 {
		t.Fatalf("extend: %d %+v", resp.status, ext)
	}
	// Without ttl, extend uses the acquire's.
	resp = post(t, a.url+"/v1/locks/job/extend", tokenBody(l.Token))
	if resp.json(t, &ext); resp.status != http.StatusOK || ext.TTLMS > 30_000 || ext.TTLMS < 29_000 {
		t.Fatalf("extend without ttl: %d %+v", resp.status, ext)
	}

	resp = post(t, b.url+"/v1/locks/job/release", tokenBody(l.Token))
	if resp.status != http.StatusNoContent || len(resp.body) != 0 {
		t.Fatalf("release: %d %s", resp.status, resp.body)
	}
	if got := a.inspect(t, "job"); !reflect.DeepEqual(got, lockJSON{Name: "job", Kind: "lock", Holders: []holderJSON{}, Waiters: []waiterJSON{}}) {
		t.Errorf("after release: %+v, want free with fence 0", got)
	}
	if l2 := b.acquire(t, "job", `{"owner":"second"}`); l2.Fence <= l.Fence || l2.Owner != "second" {
		t.Errorf("next lease %+v, want fence 2", l2)
	}
}

func TestAcquireRefusedShowsHolder(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{LockExpiry: 30 * time.Second, CriticalSection: 3 * time.Second})
	a, b := c.replicas[0], c.replicas[1]
	held := a.acquire(t, "report", `{"ttl":"10s","owner":"alice"}`)

	resp := post(t, b.url+"/v1/locks/report/acquire", `{"owner":"bob"}`)
	var refused struct {
		Error   struct{ Code, Message string }
		Holder  holderJSON
		Holders []holderJSON
		Mode    string
		Queue   int
	}
	resp.json(t, &refused)
	if resp.status != http.StatusConflict || refused.Error.Code != "locked" ||
		refused.Holder.Owner != "alice" || refused.Holder.Fence != held.Fence ||
		refused.Holder.TTLMS <= 9000 || resp.header.Get("Retry-After") != "10" ||
		len(refused.Holders) != 1 || refused.Holders[0] != refused.Holder || refused.Mode != "exclusive" || refused.Queue != 0 {
		t.Fatalf("refusal: %d Retry-After %q %+v", resp.status, resp.header.Get("Retry-After"), refused)
	}

	// A demo critical section blocks /v1 and shows no owner or fence.
	demo := make(chan response, 1)
	go func() { demo <- get(t, a.url+"/lock?resource_id=shared") }()
	waitHeld(t, a, "shared")
	resp = post(t, b.url+"/v1/locks/shared/acquire", "")
	resp.json(t, &refused)
	if resp.status != http.StatusConflict || refused.Holder.Owner != "" || refused.Holder.Fence != 0 || refused.Holder.TTLMS <= 0 {
		t.Fatalf("refusal behind a demo lock: %d %s", resp.status, resp.body)
	}
	if got := b.inspect(t, "shared"); !got.Held || got.Owner != "" || got.Fence != 0 {
		t.Errorf("demo lock inspected as %+v", got)
	}
	if d := <-demo; d.status != http.StatusOK {
		t.Fatalf("demo: %d %s", d.status, d.body)
	}

	// And the other way round: a /v1 lease makes the demo fail as the
	// README shows, after redsync's retries.
	if r := get(t, b.url+"/lock?resource_id=report"); r.status != http.StatusInternalServerError ||
		!strings.Contains(string(r.body), "lock already taken") {
		t.Errorf("demo behind a /v1 lease: %d %s", r.status, r.body)
	}
}

// waitHeld waits until name is held (a request in flight took it).
func waitHeld(t *testing.T, r *replica, name string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if r.inspect(t, name).Held {
			return
		}
	}
	t.Fatalf("%s never became held", name)
}

func TestWrongOrExpiredTokenChangesNothing(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]
	held := a.acquire(t, "guarded", `{"ttl":"20s","owner":"keeper"}`)
	before := b.inspect(t, "guarded")

	for _, route := range []string{"extend", "release"} {
		resp := post(t, b.url+"/v1/locks/guarded/"+route, tokenBody("not-the-token-"+held.Token[:8]))
		if resp.status != http.StatusConflict || resp.errorCode() != "not_holder" {
			t.Errorf("%s with a wrong token: %d %s", route, resp.status, resp.body)
		}
	}
	after := b.inspect(t, "guarded")
	if after.Owner != "keeper" || after.Fence != held.Fence || !after.Held || after.TTLMS > before.TTLMS {
		t.Errorf("after wrong tokens: %+v (before %+v)", after, before)
	}

	// A lease that ran out is gone for good, even before anyone else takes
	// the lock; and once someone has, the old token cannot touch theirs.
	old := a.acquire(t, "brief", `{"ttl":"150ms"}`)
	time.Sleep(300 * time.Millisecond)
	if resp := post(t, b.url+"/v1/locks/brief/extend", tokenBody(old.Token)); resp.errorCode() != "not_holder" {
		t.Errorf("extend after expiry: %d %s", resp.status, resp.body)
	}
	next := b.acquire(t, "brief", `{"owner":"next"}`)
	for _, route := range []string{"extend", "release"} {
		if resp := post(t, a.url+"/v1/locks/brief/"+route, tokenBody(old.Token)); resp.errorCode() != "not_holder" {
			t.Errorf("%s with an expired token: %d %s", route, resp.status, resp.body)
		}
	}
	if got := a.inspect(t, "brief"); got.Owner != "next" || got.Fence != next.Fence || next.Fence <= old.Fence {
		t.Errorf("after the old token's attempts: %+v, want next's fence %d", got, next.Fence)
	}
}

func TestCheckFence(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, Options{})
	r := c.replicas[0]
	url := r.url + "/v1/locks/ledger/check"
	stale := func(fence int64) int64 {
		t.Helper()
		resp := post(t, url, `{"fence":`+strconv.FormatInt(fence, 10)+`}`)
		var body struct {
			Error        struct{ Code, Message string }
			CurrentFence *int64 `json:"current_fence"`
		}
		if resp.json(t, &body); resp.status != http.StatusConflict || body.Error.Code != "stale_fence" || body.CurrentFence == nil {
			t.Fatalf("check %d: %d %s", fence, resp.status, resp.body)
		}
		return *body.CurrentFence
	}
	if cur := stale(1); cur != 0 {
		t.Errorf("free lock: current_fence %d, want 0", cur)
	}
	first := r.acquire(t, "ledger", `{"ttl":"10s"}`)
	if resp := post(t, r.url+"/v1/locks/ledger/release", tokenBody(first.Token)); resp.status != http.StatusNoContent {
		t.Fatal(resp.status)
	}
	second := r.acquire(t, "ledger", `{"ttl":"10s"}`)
	resp := post(t, url, `{"fence":`+strconv.FormatInt(second.Fence, 10)+`}`)
	if resp.status != http.StatusOK || strings.TrimSpace(string(resp.body)) != `{"current":true}` {
		t.Fatalf("live fence: %d %s", resp.status, resp.body)
	}
	if cur := stale(first.Fence); cur != second.Fence {
		t.Errorf("old fence: current_fence %d, want %d", cur, second.Fence)
	}
}

func TestListLocks(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]
	want := map[string]lockJSON{}
	for i := range 7 {
		name := "batch." + strconv.Itoa(i)
		l := a.acquire(t, name, `{"owner":"lister"}`)
		want[name] = lockJSON{Name: name, Owner: "lister", Fence: l.Fence}
	}
	a.acquire(t, "other", "")
	if _, err := a.locks.Acquire(context.Background(), "batch.demo", time.Minute); err != nil {
		t.Fatal(err)
	}
	want["batch.demo"] = lockJSON{Name: "batch.demo"}

	seen := map[string]bool{}
	cursor := ""
	for page := 0; page == 0 || cursor != ""; page++ {
		if page > 50 {
			t.Fatal("listing never ends")
		}
		resp := get(t, b.url+"/v1/locks?prefix=batch.&limit=3&cursor="+cursor)
		var l listJSON
		if resp.json(t, &l); resp.status != http.StatusOK || len(l.Locks) > 3 {
			t.Fatalf("page %d: %d %s", page, resp.status, resp.body)
		}
		for _, e := range l.Locks {
			w, ok := want[e.Name]
			if !ok || seen[e.Name] || e.Owner != w.Owner || e.Fence != w.Fence || e.TTLMS <= 0 {
				t.Errorf("entry %+v: unexpected, repeated or wrong (want %+v)", e, w)
			}
			seen[e.Name] = true
		}
		cursor = l.NextCursor
	}
	if len(seen) != len(want) {
		t.Errorf("listed %d locks, want %d", len(seen), len(want))
	}
	// Without a prefix everything held is there, "other" too.
	resp := get(t, b.url+"/v1/locks")
	var all listJSON
	if resp.json(t, &all); len(all.Locks) != len(want)+1 || all.NextCursor != "" {
		t.Errorf("unfiltered list: %s", resp.body)
	}
}

// TestWaiterHandOff: a waiter on replica B is granted the lock when the
// holder on replica A releases, or when A's holder vanishes and its lease
// runs out, and a waiter whose wait runs out is refused.
func TestWaiterHandOff(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]

	held := a.acquire(t, "handoff", `{"ttl":"30s"}`)
	got := make(chan response, 1)
	go func() { got <- post(t, b.url+"/v1/locks/handoff/acquire", `{"wait":"20s","owner":"waiter"}`) }()
	waitWaiting(t, b, 1)
	time.Sleep(100 * time.Millisecond) // so waited_ms is visibly more than nothing
	if r := post(t, a.url+"/v1/locks/handoff/release", tokenBody(held.Token)); r.status != http.StatusNoContent {
		t.Fatal(r.status)
	}
	resp := <-got
	var l leaseJSON
	if resp.json(t, &l); resp.status != http.StatusOK || l.Fence <= held.Fence || l.Owner != "waiter" ||
		l.WaitedMS < 100 || l.WaitedMS > 10_000 {
		t.Fatalf("waiter: %d %+v", resp.status, l)
	}

	// The holder vanishes: the waiter gets the lock when the lease ends.
	abandoned := a.acquire(t, "abandoned", `{"ttl":"700ms"}`)
	resp = post(t, b.url+"/v1/locks/abandoned/acquire", `{"wait":"10s"}`)
	if resp.json(t, &l); resp.status != http.StatusOK || l.Fence <= abandoned.Fence || l.WaitedMS < 500 {
		t.Fatalf("takeover at expiry: %d %+v", resp.status, l)
	}

	// A wait that runs out ends with one more attempt and a 409.
	a.acquire(t, "busy", `{"ttl":"30s"}`)
	start := time.Now()
	resp = post(t, b.url+"/v1/locks/busy/acquire", `{"wait":"300ms"}`)
	if resp.status != http.StatusConflict || resp.errorCode() != "locked" || time.Since(start) < 300*time.Millisecond {
		t.Fatalf("wait ran out: %d %s after %v", resp.status, resp.body, time.Since(start))
	}
}

// waitWaiting waits until r has n requests waiting.
func waitWaiting(t *testing.T, r *replica, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if r.locks.Waiting() == n {
			return
		}
	}
	t.Fatalf("%d waiting, want %d", r.locks.Waiting(), n)
}

func TestWaiterThatDisconnectsHoldsNothing(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]
	held := a.acquire(t, "left", `{"ttl":"30s"}`)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		call(t, ctx, http.MethodPost, b.url+"/v1/locks/left/acquire", `{"wait":"1m"}`)
	}()
	waitWaiting(t, b, 1)
	cancel()
	<-done
	waitWaiting(t, b, 0) // it stops waiting at once, not when wait ends

	if r := post(t, a.url+"/v1/locks/left/release", tokenBody(held.Token)); r.status != http.StatusNoContent {
		t.Fatal(r.status)
	}
	time.Sleep(50 * time.Millisecond) // a wrongly remaining waiter would grab it now
	if got := a.inspect(t, "left"); got.Held {
		t.Fatalf("the departed waiter holds the lock: %+v", got)
	}
}

// TestContentionAcrossReplicas: many clients on both replicas take turns on
// one lock. A guarded record catches two holders at once, and fences must
// rise in the order the grants happened.
func TestContentionAcrossReplicas(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	const clients, rounds = 12, 8
	var (
		mu      sync.Mutex
		holders int // the guarded record: how many think they hold the lock
		fences  []int64
		wg      sync.WaitGroup
	)
	for i := range clients {
		r := c.replicas[i%2]
		wg.Go(func() {
			for range rounds {
				resp := post(t, r.url+"/v1/locks/contended/acquire", `{"ttl":"10s","wait":"1m"}`)
				var l leaseJSON
				if resp.json(t, &l); resp.status != http.StatusOK {
					t.Errorf("acquire: %d %s", resp.status, resp.body)
					return
				}
				mu.Lock()
				holders++
				if holders != 1 {
					t.Errorf("%d holders at once", holders)
				}
				fences = append(fences, l.Fence)
				mu.Unlock()
				time.Sleep(time.Millisecond)
				mu.Lock()
				holders--
				mu.Unlock()
				if resp := post(t, c.replicas[(i+1)%2].url+"/v1/locks/contended/release", tokenBody(l.Token)); resp.status != http.StatusNoContent {
					t.Errorf("release: %d %s", resp.status, resp.body)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(fences) != clients*rounds {
		t.Fatalf("%d grants, want %d", len(fences), clients*rounds)
	}
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Fatalf("fence %d granted after %d", fences[i], fences[i-1])
		}
	}
}
