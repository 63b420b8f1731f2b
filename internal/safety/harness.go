package safety

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
	"github.com/go-distributed-lock/go-distributed-lock/internal/safety/check"
)

// Scenario is one run: a topology, a fault, and what the checkers must say.
type Scenario struct {
	Name  string
	Mode  Mode
	Redis []string // extra redis-server arguments for every node (S1, R3)
	Fault *Fault   // nil: no fault (a baseline)
	// Workload says how the clients ask for each name; the zero value is
	// plain exclusive locks. Its name goes in front of the scenario's.
	Workload Workload
	// MinReplicas sets lockd's REDIS_MIN_REPLICAS (C3, SN): every grant
	// and extend waits for that many replicas (WAIT), or is undone.
	MinReplicas int
	// Unfenced turns the store's fencing off.
	Unfenced bool
	// Expect names the checkers (check.Checker...) that must find
	// violations; Allow those that may; every other checker must find
	// none.
	Expect []string
	Allow  []string
	// Liveness is how soon after the fault ends every hot lock must be
	// granted again; 0 means TTL + 1s. The workload's longest lock-delay
	// is added to either: a lease that expires unreleased after the fault
	// keeps its name closed that long more. Traffic after the fault runs
	// at least this long, so a late recovery is measured, not "never".
	Liveness time.Duration
	// EveryName extends Liveness from the hot locks to every name: once
	// the fault has run, each name the traffic has not been granted since
	// the fault's end is asked for until it is (askEveryName).
	EveryName bool
	// Short scenarios also run in make test.
	Short bool
}

// liveness is sc.Liveness or its default.
func (sc Scenario) liveness() time.Duration {
	bound := TTL + time.Second
	if sc.Liveness > 0 {
		bound = sc.Liveness
	}
	return bound + sc.Workload.maxDelay()
}

// trafficAfter is how long the traffic runs after the fault: timing's
// Recovery, or the scenario's liveness bound when it set one or its
// workload's lock-delay widened the default, so that a late recovery is
// measured, not "never".
func (sc Scenario) trafficAfter(timing Timing) time.Duration {
	if sc.Liveness > 0 || sc.Workload.maxDelay() > 0 {
		return max(timing.Recovery, sc.liveness())
	}
	return timing.Recovery
}

// FullName is the scenario's name with its workload's in front.
func (sc Scenario) FullName() string {
	if sc.Workload.Name == "" {
		return sc.Name
	}
	return sc.Workload.Name + ": " + sc.Name
}

// Fault is something done to the system while the clients run. Run injects
// it, keeps it for its duration, heals it, and marks both moments with
// h.FaultStart and h.FaultEnd.
type Fault struct {
	Name string
	Run  func(h *Harness) error
}

// Settings shared by every scenario. TTL 2s leaves the scheduler noise of a
// busy 2-core machine far below the lease; MaxTTL is what lockd is told is
// the longest lease it grants, which bounds how long a restarted Redis node
// stays out of quorums.
const (
	TTL          = 2 * time.Second
	Wait         = time.Second
	MaxTTL       = 3 * time.Second
	inProcess    = 7
	globalPace   = 25 * time.Millisecond // 40 cycles/s over the in-process clients
	processPace  = 150 * time.Millisecond
	probeClients = 1000 // client ids of the liveness probes start here
	askClients   = 2000 // and those of askEveryName's askers here
	askWait      = 500 * time.Millisecond
)

// KeepOut is how long lockd keeps a Redis node that restarted without its
// data out of quorums, counted from its restart: MaxTTL plus redsync's 1%
// drift margin plus a second (internal/lock's delay).
const KeepOut = MaxTTL + MaxTTL/100 + time.Second

// Hot are the locks every client contends for.
var Hot = []string{"hot-0", "hot-1", "hot-2"}

// Timing sets how long the phases around a fault last.
type Timing struct {
	Warmup   time.Duration // traffic before the fault
	Recovery time.Duration // traffic after the fault ends
}

// Harness is one scenario's running system: Redis nodes, the proxies, two
// lockd instances, the fenced store and the clients.
type Harness struct {
	T     *testing.T
	Clock Clock
	// The topology (Mode): Nodes in S1 and R3, with Proxies in front;
	// Cluster in C3; Sentinel in SN.
	Nodes    []*Node
	Proxies  *Proxies
	Cluster  *procs.Cluster
	Sentinel *procs.SentinelSet
	Lockds   []*Lockd
	Store    *Store

	child    *clientProcess
	dir      string
	workload Workload

	mu         sync.Mutex
	ops        []check.Op
	timeline   []string
	faultStart time.Duration
	faultEnd   time.Duration
}

// Mark adds a line to the fault timeline with the current time.
func (h *Harness) Mark(what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.timeline = append(h.timeline, fmt.Sprintf("%8.3fs %s", h.Clock.Now().Seconds(), what))
}

// FaultStart records that the fault is now in effect.
func (h *Harness) FaultStart(what string) {
	h.Mark("fault start: " + what)
	h.mu.Lock()
	h.faultStart = h.Clock.Now()
	h.mu.Unlock()
}

// FaultEnd records that the fault has been healed.
func (h *Harness) FaultEnd(what string) {
	h.Mark("fault end: " + what)
	h.mu.Lock()
	h.faultEnd = h.Clock.Now()
	h.mu.Unlock()
}

func (h *Harness) record(op check.Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// start brings up the system for sc: the Redis topology, proxies, lockd
// instances and the store. Everything stops in t.Cleanup.
func start(t *testing.T, sc Scenario, lockdBin string) *Harness {
	t.Helper()
	h := &Harness{T: t, Clock: NewClock(), Proxies: newProxies(), dir: t.TempDir(), workload: sc.Workload}
	t.Cleanup(h.Proxies.Close)
	h.startRedis(sc)
	h.Store = NewStore(h.Clock, !sc.Unfenced)
	t.Cleanup(h.Store.Close)
	for i := range 2 {
		env := []string{
			"PATH=" + os.Getenv("PATH"),
			"LOG_FORMAT=json",
			"REDIS_DB=0",
			"SHUTDOWN_TIMEOUT=2s",
			"MAX_TTL=" + MaxTTL.String(),
			// The demo endpoint's lease must fit under MAX_TTL too.
			"LOCK_EXPIRY=" + MaxTTL.String(),
		}
		env = append(env, h.redisEnv(i, sc)...)
		l := &Lockd{Name: fmt.Sprintf("lockd%d", i), bin: lockdBin, env: env,
			logPath: filepath.Join(h.dir, fmt.Sprintf("lockd%d.log", i))}
		if err := l.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Kill)
		h.Lockds = append(h.Lockds, l)
	}
	t.Cleanup(func() {
		if t.Failed() {
			h.report()
		}
	})
	return h
}

// report logs what a failed run needs to be understood: the fault timeline,
// the tails of every log, and where the full history was saved.
func (h *Harness) report() {
	t := h.T
	h.mu.Lock()
	t.Logf("fault timeline:\n%s", strings.Join(h.timeline, "\n"))
	ops := append([]check.Op(nil), h.ops...)
	h.mu.Unlock()
	for _, l := range h.Lockds {
		t.Logf("%s log (end):\n%s", l.Name, l.LogTail())
	}
	// A cluster's or a Sentinel set's logs are logged by redistest.
	for _, n := range h.Nodes {
		t.Logf("%s log (end):\n%s", n.Name, n.LogTail())
	}
	t.Logf("client process stderr (end):\n%s", procs.Tail(filepath.Join(h.dir, "client.log"), 20, "\n"))
	// t.TempDir goes away with the test: keep the history elsewhere.
	f, err := os.CreateTemp("", "safety-"+strings.ReplaceAll(t.Name(), "/", "_")+"-*.jsonl")
	if err != nil {
		t.Log(err)
		return
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	for _, op := range ops {
		_ = enc.Encode(map[string]any{"op": op})
	}
	for _, w := range h.Store.Log() {
		_ = enc.Encode(map[string]any{"write": w})
	}
	t.Logf("history (ops and store writes, JSON lines): %s", f.Name())
}

// locksOf lists the locks client id picks from: the hot ones and its own.
func locksOf(id int) []string { return append(slices.Clone(Hot), fmt.Sprintf("own-%d", id)) }

// allLocks lists every lock the clients use.
func allLocks() []string {
	locks := slices.Clone(Hot)
	for id := range inProcess + 1 {
		locks = append(locks, fmt.Sprintf("own-%d", id))
	}
	return locks
}

// clientConfig makes the config of client id. Most clients stay on one
// instance; every third alternates, so a lease taken on one instance is
// extended and released on the other.
func (h *Harness) clientConfig(id int) ClientConfig {
	pin := id % 2
	if id%3 == 2 {
		pin = -1
	}
	var urls []string
	for _, l := range h.Lockds {
		urls = append(urls, l.URL())
	}
	return ClientConfig{ID: id, Lockds: urls, Pin: pin, Store: h.Store.URL(), Locks: locksOf(id),
		TTL: TTL, Wait: Wait, Base: h.Clock.Base, Seed: uint64(time.Now().UnixNano()), Uses: h.workload.uses()}
}

// Row is one line of the summary table.
type Row struct {
	Scenario   string
	Mode       Mode
	Ops        int
	Grants     int
	Unknown    int
	Rejected   int // store accesses refused for a stale fence
	Faults     string
	Violations map[string]int // by checker; -1: the checker could not decide
	Recovery   time.Duration  // fault end to every hot lock granted again; -1 if never
	Seconds    float64        // wall time of the scenario
	Result     string
}

// Run runs scenario sc and checks the history. It fails t when a checker
// disagrees with sc.Expect or a liveness or hygiene check fails.
func Run(t *testing.T, sc Scenario, lockdBin string, timing Timing) Row {
	began := time.Now()
	h := start(t, sc, lockdBin)
	h.requireEmpty()
	stopTraffic := h.startTraffic()
	time.Sleep(timing.Warmup)
	faults := h.inject(sc.Fault)
	ctx, stopAsking := context.WithTimeout(context.Background(), sc.trafficAfter(timing))
	var asking sync.WaitGroup
	if sc.EveryName {
		asking.Go(func() { h.askEveryName(ctx) })
	}
	<-ctx.Done()
	stopAsking()
	asking.Wait()
	stopTraffic()

	h.waitReplicated(sc)
	h.probe()
	h.checkKeysGone()
	h.checkConnections()
	row := h.summarise(sc, faults)
	row.Seconds = time.Since(began).Seconds()
	row.Result = "PASS"
	if t.Failed() {
		row.Result = "FAIL"
	} else {
		// A failed run's report has it already.
		h.mu.Lock()
		t.Logf("fault timeline:\n%s", strings.Join(h.timeline, "\n"))
		h.mu.Unlock()
	}
	return row
}

// requireEmpty stops the run when a node holds lock keys before it starts:
// they would be counted against this scenario.
func (h *Harness) requireEmpty() {
	for _, s := range h.servers() {
		if !s.data {
			continue
		}
		if keys, err := lockKeys(context.Background(), s.addr); err != nil || len(keys) > 0 {
			h.T.Fatalf("%s not empty at start: %v %v", s.name, keys, err)
		}
	}
}

// startTraffic starts the clients and returns how to stop them: the
// in-process ones share one pace, so the total rate stays fixed, and one
// more runs in its own process, where it can be paused. Stopping waits for
// every client and records the child's ops.
func (h *Harness) startTraffic() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	pace := time.NewTicker(globalPace)
	var wg sync.WaitGroup
	for id := range inProcess {
		c := NewClient(h.clientConfig(id), h.record)
		wg.Go(func() {
			defer c.Close()
			c.Run(ctx, pace.C)
		})
	}
	stopInProcess := func() {
		cancel()
		wg.Wait()
		pace.Stop()
	}
	childCfg := h.clientConfig(inProcess)
	childCfg.Careless = true
	child, err := startClientProcess(childCfg, processPace, filepath.Join(h.dir, "client.log"))
	if err != nil {
		stopInProcess()
		h.T.Fatal(err)
	}
	h.child = child
	h.Mark("traffic started")
	return func() {
		stopInProcess()
		for _, op := range child.stop(10 * time.Second) {
			h.record(op)
		}
		h.Mark("traffic stopped")
	}
}

// inject runs the fault, or marks an empty one for a baseline, and returns
// its name for the summary.
func (h *Harness) inject(f *Fault) string {
	if f == nil {
		h.FaultStart("none")
		h.FaultEnd("none")
		return "none"
	}
	if err := f.Run(h); err != nil {
		h.T.Errorf("fault %s: %v", f.Name, err)
	}
	return f.Name
}

// checkKeysGone waits for the last lease to run out, and for any
// lock-delay it leaves: no lock key may be left on any node then.
func (h *Harness) checkKeysGone() {
	time.Sleep(TTL + h.workload.maxDelay() + 500*time.Millisecond)
	for _, s := range h.servers() {
		if !s.data {
			continue
		}
		keys, err := lockKeys(context.Background(), s.addr)
		if err != nil {
			h.T.Errorf("%s: scan lock keys: %v", s.name, err)
		} else if len(keys) > 0 {
			h.T.Errorf("%s: lock keys left %v after traffic stopped and the TTL passed", s.name, keys)
		}
	}
}

// summarise counts the history into the scenario's row, checks liveness
// and runs the checkers.
func (h *Harness) summarise(sc Scenario, faults string) Row {
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	faultEnd := h.faultEnd
	h.mu.Unlock()
	row := Row{Scenario: sc.FullName(), Mode: sc.Mode, Ops: len(ops), Faults: faults}
	for _, op := range ops {
		if op.Kind == check.KindAcquire && op.Outcome == check.OK {
			row.Grants++
		}
		if op.Outcome == check.Unknown {
			row.Unknown++
		}
	}
	for _, w := range h.Store.Log() {
		if !w.Accepted {
			row.Rejected++
		}
	}
	names, which := Hot, "hot locks"
	if sc.EveryName {
		names, which = allLocks(), "all locks"
	}
	row.Recovery = recovery(ops, faultEnd, names)
	if bound := sc.liveness(); row.Recovery < 0 || row.Recovery > bound {
		h.T.Errorf("liveness: %s granted again %v after the fault ended (-1: never); want within %v", which, row.Recovery, bound)
	}
	row.Violations = h.runCheckers(ops, sc)
	return row
}

// probe asks for every lock once, through both instances in turn, waiting up
// to one TTL plus a second, plus the workload's longest lock-delay: any
// lease left by the traffic ends by then, and any delay it left, so a
// refusal means the lock is stuck. A lock is asked for exclusively, a
// semaphore with its limit. The probes go into the history too.
func (h *Harness) probe() {
	wait := TTL + time.Second + h.workload.maxDelay()
	for k, lock := range allLocks() {
		cfg := h.clientConfig(probeClients + k)
		cfg.Pin = k % 2
		c := NewClient(cfg, h.record)
		l, outcome := c.Acquire(lock, wait)
		if outcome == check.OK {
			c.Release(l)
		} else {
			h.T.Errorf("liveness: %s not granted within %v after the traffic stopped", lock, wait)
		}
		c.Close()
	}
	h.Mark("probes done")
}

// askEveryName asks for each name, one client per name, until the name
// has been granted since the fault ended, to the traffic or to the asker,
// or until ctx ends: the traffic seldom picks a private lock, and
// Scenario.EveryName wants each seen granted again. The asks go into the
// history. After an answer of unknown outcome an asker pauses, as the
// traffic's clients do: each such answer widens porcupine's search.
func (h *Harness) askEveryName(ctx context.Context) {
	h.mu.Lock()
	from := h.faultEnd
	h.mu.Unlock()
	var wg sync.WaitGroup
	for k, lock := range allLocks() {
		cfg := h.clientConfig(askClients + k)
		cfg.Pin = k % 2
		wg.Go(func() {
			c := NewClient(cfg, h.record)
			defer c.Close()
			for ctx.Err() == nil && !h.grantedSince(lock, from) {
				l, outcome := c.Acquire(lock, askWait)
				switch outcome {
				case check.OK:
					c.Release(l)
					return
				case check.Unknown:
					select {
					case <-ctx.Done():
					case <-time.After(200 * time.Millisecond):
					}
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() == nil {
		h.Mark("every lock granted again")
	}
}

// grantedSince reports whether the history has an OK acquire of lock sent
// at from or later.
func (h *Harness) grantedSince(lock string, from time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range h.ops {
		if op.Kind == check.KindAcquire && op.Lock == lock && op.Outcome == check.OK && op.Call >= from {
			return true
		}
	}
	return false
}

// checkConnections stops both lockd instances and expects every server
// (node or sentinel) to be back to one client of its own, the one asking:
// nothing the harness or lockd opened is left behind, and the proxies close
// the Redis side of what they carried. Replication links and the
// sentinels' links are the topology's (otherClients).
func (h *Harness) checkConnections() {
	for _, l := range h.Lockds {
		l.Stop()
	}
	ctx := context.Background()
	for _, s := range h.servers() {
		var got int
		var err error
		for deadline := time.Now().Add(3 * time.Second); ; {
			got, err = otherClients(ctx, s.addr)
			if err == nil && got <= 1 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil {
			h.T.Errorf("%s: CLIENT LIST: %v", s.name, err)
		} else if got > 1 {
			h.T.Errorf("%s: %d clients still connected after lockd stopped; want 1 (this check's own)", s.name, got)
		}
	}
}

// recovery is how long after the fault ended every lock of names had been
// granted again (-1 if one never was).
func recovery(ops []check.Op, faultEnd time.Duration, names []string) time.Duration {
	worst := time.Duration(0)
	for _, lock := range names {
		first := time.Duration(-1)
		for _, op := range ops {
			if op.Kind == check.KindAcquire && op.Lock == lock && op.Outcome == check.OK && op.Call >= faultEnd &&
				(first < 0 || op.Return < first) {
				first = op.Return
			}
		}
		if first < 0 {
			return -1
		}
		worst = max(worst, first-faultEnd)
	}
	return worst
}

// Signal helpers for faults.

// pauseNode stops node j with SIGSTOP.
func (h *Harness) pauseNode(j int) error { return h.Nodes[j].Signal(syscall.SIGSTOP) }

// resumeNode resumes node j with SIGCONT.
func (h *Harness) resumeNode(j int) error { return h.Nodes[j].Signal(syscall.SIGCONT) }
