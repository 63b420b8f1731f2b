package lock

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// TestReleasedLocksLeaveNoKey: 10,000 names acquired and released leave no
// key that names any of them; what is left is shared and bounded (the
// slots' fence counters and the events stream).
func TestReleasedLocksLeaveNoKey(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	const names, workers = 10_000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < names; i += workers {
				name := fmt.Sprintf("residue-%05d", i)
				l, err := m.TryAcquire(ctx, name, Grant{TTL: time.Minute, Owner: "o"})
				if err == nil {
					err = m.ReleaseToken(ctx, name, l.Token)
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var left []string
	counters := 0
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		switch k := iter.Val(); {
		case strings.Contains(k, "residue-"):
			left = append(left, k)
		case strings.HasPrefix(k, fenceCounterPrefix):
			counters++
		case k != EventsStream && k != markerKey:
			t.Errorf("unexpected key %q", k)
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("%d keys name released locks, e.g. %q", len(left), left[:min(len(left), 5)])
	}
	if counters > slotCount {
		t.Fatalf("%d fence counters, more than one per slot", counters)
	}
}

// oldReplica does what lockd of earlier releases did for a fenced acquire, extend
// and release, to test that both layouts work side by side.
type oldReplica struct{ rdb *redis.Client }

var oldFenceScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) ~= ARGV[1] then return 0 end
local fence = redis.call("INCR", KEYS[3])
redis.call("HSET", KEYS[2], "token", ARGV[1], "owner", ARGV[2], "fence", fence, "ttl_ms", ARGV[3], "at", ARGV[4])
redis.call("PEXPIRE", KEYS[2], 7200000)
return fence
`)

func (o oldReplica) acquire(t *testing.T, name, token string) int64 {
	t.Helper()
	ctx := context.Background()
	if ok, err := o.rdb.SetNX(ctx, KeyPrefix+name, token, time.Minute).Result(); err != nil || !ok {
		t.Fatalf("old replica: SET NX %s: %v %v", name, ok, err)
	}
	fence, err := oldFenceScript.Run(ctx, o.rdb, []string{KeyPrefix + name, metaPrefix + name, fencePrefix + name},
		token, "old", 60000, time.Now().UnixMilli()).Int64()
	if err != nil || fence == 0 {
		t.Fatalf("old replica: fence %d, %v", fence, err)
	}
	return fence
}

// extend and release are redsync's compare-and-pexpire and compare-and-del.
func (o oldReplica) extend(t *testing.T, name, token string) bool {
	t.Helper()
	n, err := o.rdb.Eval(context.Background(), `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) else return 0 end`,
		[]string{KeyPrefix + name}, token, 60000).Int64()
	return err == nil && n == 1
}

func (o oldReplica) release(t *testing.T, name, token string) bool {
	t.Helper()
	n, err := o.rdb.Eval(context.Background(), `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`,
		[]string{KeyPrefix + name}, token).Int64()
	return err == nil && n == 1
}

// TestOldLayoutIsHonouredThenRetired: with keys of the three-key layout of earlier releases
// present, a new replica reads the old grant (inspect, extend, release),
// continues fences above the old counters, and then deletes them.
func TestOldLayoutIsHonouredThenRetired(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	old := oldReplica{rdb}
	held := old.acquire(t, "up-held", "old-token")
	rdb.Set(ctx, fencePrefix+"up-idle", 41, 0)

	h, ok, err := m.Inspect(ctx, "up-held")
	if err != nil || !ok || h.Owner != "old" || h.Fence != held {
		t.Fatalf("inspect an old grant: %+v %v %v, want owner old fence %d", h, ok, err, held)
	}
	if l, err := m.Renew(ctx, "up-held", "old-token", 0); err != nil || l.Fence != held || l.TTL != time.Minute {
		t.Fatalf("renew an old grant: %+v %v", l, err)
	}
	if err := m.ReleaseToken(ctx, "up-held", "old-token"); err != nil {
		t.Fatal(err)
	}
	for name, above := range map[string]int64{"up-held": held, "up-idle": 41} {
		l, err := m.TryAcquire(ctx, name, Grant{TTL: time.Minute})
		if err != nil || l.Fence <= above {
			t.Fatalf("%s: %+v %v, want a fence above the old counter %d", name, l, err, above)
		}
		if err := m.ReleaseToken(ctx, name, l.Token); err != nil {
			t.Fatal(err)
		}
		if keys := rdb.Keys(ctx, "*"+name+"*").Val(); len(keys) != 0 {
			t.Fatalf("%s: keys %q remain, want the old ones retired", name, keys)
		}
	}
}

// TestRollingUpgradeKeepsFencesRising: while old replicas run, new ones with
// LegacyKeys write the old layout, so each side can extend and release the
// other's grants and fences keep rising whichever side grants.
func TestRollingUpgradeKeepsFencesRising(t *testing.T) {
	t.Parallel()
	_, rdb, s := setup(t)
	m := New(Config{Nodes: []*redis.Options{nodeOptions(s.Addr, "pw")}, LegacyKeys: true})
	t.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	old := oldReplica{rdb}
	var last int64
	rising := func(who string, f int64) {
		t.Helper()
		if f <= last {
			t.Fatalf("%s granted fence %d after %d", who, f, last)
		}
		last = f
	}
	for i := range 3 {
		tok := fmt.Sprintf("old-%d", i)
		rising("old replica", old.acquire(t, "rolling", tok))
		if _, err := m.Renew(ctx, "rolling", tok, 0); err != nil {
			t.Fatalf("new replica extends an old grant: %v", err)
		}
		if err := m.ReleaseToken(ctx, "rolling", tok); err != nil {
			t.Fatalf("new replica releases an old grant: %v", err)
		}
		l, err := m.TryAcquire(ctx, "rolling", Grant{TTL: time.Minute, Owner: "new"})
		if err != nil {
			t.Fatal(err)
		}
		rising("new replica", l.Fence)
		if !old.extend(t, "rolling", l.Token) || !old.release(t, "rolling", l.Token) {
			t.Fatal("the old replica cannot extend and release a grant of a new one in LegacyKeys mode")
		}
	}
}

// TestScriptsSurviveRedisRestart: after Redis restarts empty, every new
// connection loads the scripts before its first command, so releases are
// plain EVALSHAs, never a NOSCRIPT answer followed by EVAL.
func TestScriptsSurviveRedisRestart(t *testing.T) {
	t.Parallel()
	m, _, s := setup(t)
	ctx := context.Background()
	cycleBoth := func() error {
		d, err := m.Acquire(ctx, "restart-demo", time.Minute)
		if err != nil {
			return err
		}
		if err := m.Release(ctx, d); err != nil {
			return err
		}
		l, err := m.TryAcquire(ctx, "restart-v1", Grant{TTL: time.Minute})
		if err != nil {
			return err
		}
		return m.ReleaseToken(ctx, "restart-v1", l.Token)
	}
	if err := cycleBoth(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	again, err := redistest.Run(t.TempDir(), redistest.Options{Password: "pw", Port: s.Port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Stop)
	mon := again.Monitor(t)
	// The pooled connections died with the old process: the first calls
	// may fail on them (lockd does not retry), then new ones are made.
	deadline := time.Now().Add(5 * time.Second)
	for err := cycleBoth(); err != nil; err = cycleBoth() {
		if time.Now().After(deadline) {
			t.Fatalf("no cycle after the restart: %v", err)
		}
	}
	lines := mon.WaitFor(t, `"DEL" "lock:restart-v1"`, 5*time.Second)
	for _, l := range lines {
		if strings.Contains(strings.ToLower(l), `"eval" `) {
			t.Fatalf("a script went out as EVAL after the restart:\n%s", strings.Join(lines, "\n"))
		}
	}
}

// TestSingleNodeRestartedEmpty: the one node loses its data. lockd cannot
// wait it out (nobody else could vote), but it says so in a WARN, and
// fences go on rising above the lost counter.
func TestSingleNodeRestartedEmpty(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Password: "pw"})
	m, logs := loggedManager(t, srv)
	ctx := context.Background()
	if err := m.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	var high int64
	for range 3 {
		l, err := m.TryAcquire(ctx, "single", Grant{TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		high = l.Fence
		if _, err := m.ReleaseGrant(ctx, "single", l.Token); err != nil {
			t.Fatal(err)
		}
	}
	srv.Stop()
	n, err := redistest.Run(t.TempDir(), redistest.Options{Password: "pw", Port: srv.Port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	var l Lease
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if l, err = m.TryAcquire(ctx, "single", Grant{TTL: time.Second}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: %v", err)
		}
	}
	if l.Fence <= high {
		t.Errorf("fence %d after Redis lost its data, want above %d", l.Fence, high)
	}
	if n := strings.Count(logs.String(), "Redis node restarted without its data"); n != 1 {
		t.Errorf("%d WARNs about the lost data, want 1:\n%s", n, logs.String())
	}
}

// heldObserver keeps the hold durations releases report.
type heldObserver struct {
	noObserver
	mu   sync.Mutex
	held []time.Duration
}

func (o *heldObserver) Released(_, result string, held time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.held = append(o.held, held)
}

func (o *heldObserver) last() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held[len(o.held)-1]
}

// TestGrantValueIsCompact: a lock held with an empty owner and the longest
// TTL is a value Redis keeps in one allocation with its object (embstr, at
// most 44 bytes), and its time is read back right (the hold's duration,
// to the microsecond) both where the fence is Redis's clock and where the
// slot's counter ran ahead of it. A value of the format earlier builds wrote is still
// extended and released.
func TestGrantValueIsCompact(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Password: "pw"})
	obs := &heldObserver{}
	m := New(Config{Nodes: []*redis.Options{nodeOptions(srv.Addr, "pw")}, Observer: obs})
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	rdb := srv.Client(t, 0)
	ctx := context.Background()
	const pause = 30 * time.Millisecond
	holdFor := func(name string, l Lease) {
		t.Helper()
		time.Sleep(pause)
		if err := m.ReleaseToken(ctx, name, l.Token); err != nil {
			t.Fatal(err)
		}
		if held := obs.last(); held < pause || held > 10*time.Second {
			t.Fatalf("%s: held %v, want about %v", name, held, pause)
		}
	}

	l, err := m.TryAcquire(ctx, "compact", Grant{TTL: MaxTTL})
	if err != nil {
		t.Fatal(err)
	}
	v := rdb.Get(ctx, "lock:compact").Val()
	if enc := rdb.ObjectEncoding(ctx, "lock:compact").Val(); len(v) > 44 || enc != "embstr" {
		t.Fatalf("value %q (%d bytes) is %s, want at most 44 bytes, embstr", v, len(v), enc)
	}
	holdFor("compact", l)

	// A hold shorter than a millisecond is still timed, so the hold-time
	// histogram counts it.
	if l, err = m.TryAcquire(ctx, "brief", Grant{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseToken(ctx, "brief", l.Token); err != nil {
		t.Fatal(err)
	}
	if held := obs.last(); held <= 0 || held > 10*time.Second {
		t.Fatalf("brief: held %v, want a positive duration", held)
	}

	// The slot's counter 10 s ahead of Redis's clock: the fence is the
	// counter's, and the value carries the grant's time apart from it.
	counter := m.keys("ahead")[1]
	rdb.Set(ctx, counter, time.Now().Add(10*time.Second).UnixMicro(), 0)
	if l, err = m.TryAcquire(ctx, "ahead", Grant{TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if v := rdb.Get(ctx, "lock:ahead").Val(); !strings.Contains(v, "-") {
		t.Fatalf("value %q, want the grant's time as a difference from the fence", v)
	}
	holdFor("ahead", l)

	// Earlier builds: "fence|ttl_ms|at_ms|token|owner", at_ms on lockd's clock.
	at := time.Now().Add(-pause).UnixMilli()
	rdb.Set(ctx, "lock:earlier", fmt.Sprintf("%x|%x|%x|%s|%s", 77, 60000, at, "earlier-token", "o"), time.Minute)
	if l, err := m.Renew(ctx, "earlier", "earlier-token", 0); err != nil || l.Fence != 77 || l.TTL != time.Minute {
		t.Fatalf("renew a grant of an earlier build: %+v %v", l, err)
	}
	holdFor("earlier", Lease{Token: "earlier-token"})
}
