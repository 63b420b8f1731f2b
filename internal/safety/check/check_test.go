package check

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

const ms = time.Millisecond

// The helpers build ops of lock "L" with times in milliseconds, a TTL of
// one second and, unless said otherwise, a validity of one second, so that
// interval ends are easy to work out by hand.

func acquired(client int, call, ret int, token string, fence int64) Op {
	return Op{Client: client, Kind: KindAcquire, Lock: "L", Call: ms * time.Duration(call), Return: ms * time.Duration(ret),
		Outcome: OK, Token: token, Fence: fence, TTL: time.Second, Validity: time.Second}
}

func withValidity(op Op, validity, waited int) Op {
	op.Validity, op.Waited = ms*time.Duration(validity), ms*time.Duration(waited)
	return op
}

func onLock(op Op, lock string) Op {
	op.Lock = lock
	return op
}

func acquireFailed(client int, call, ret int, outcome Outcome) Op {
	return Op{Client: client, Kind: KindAcquire, Lock: "L", Call: ms * time.Duration(call), Return: ms * time.Duration(ret),
		Outcome: outcome, TTL: time.Second}
}

func extended(client int, call, ret int, token string, fence int64) Op {
	return Op{Client: client, Kind: KindExtend, Lock: "L", Call: ms * time.Duration(call), Return: ms * time.Duration(ret),
		Outcome: OK, Token: token, Fence: fence, TTL: time.Second, Validity: time.Second}
}

func extendFailed(client int, call, ret int, token string, outcome Outcome) Op {
	return Op{Client: client, Kind: KindExtend, Lock: "L", Call: ms * time.Duration(call), Return: ms * time.Duration(ret),
		Outcome: outcome, Token: token, TTL: time.Second}
}

func released(client int, call, ret int, token string, outcome Outcome) Op {
	return Op{Client: client, Kind: KindRelease, Lock: "L", Call: ms * time.Duration(call), Return: ms * time.Duration(ret),
		Outcome: outcome, Token: token}
}

func written(client int, at int, token string, fence int64, accepted bool) Write {
	return Write{Client: client, Lock: "L", Fence: fence, Token: token, At: ms * time.Duration(at), Accepted: accepted, Kind: KindWrite}
}

func incremented(client int, at int, value int64, accepted bool) Write {
	return Write{Client: client, Lock: "L", Fence: value, Token: "t", At: ms * time.Duration(at), Accepted: accepted,
		Kind: KindIncrement, Value: value}
}

// kinds lists the violations' kinds, sorted, which is what the tables
// compare: the details are for people.
func kinds(vs []Violation) []string {
	var k []string
	for _, v := range vs {
		k = append(k, v.Kind)
	}
	slices.Sort(k)
	return k
}

func checkKinds(t *testing.T, got []Violation, want []string) {
	t.Helper()
	if !slices.Equal(kinds(got), want) {
		t.Errorf("got %v, want %v", kinds(got), want)
		for _, v := range got {
			t.Logf("  %s", v)
		}
	}
}

func TestMutualExclusion(t *testing.T) {
	tests := []struct {
		name  string
		ops   []Op
		slack time.Duration
		want  []string
	}{
		{name: "next grant after expiry", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 1500, 1510, "b", 2),
		}},
		{name: "overlapping grants", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 500, 510, "b", 2),
		}, want: []string{"overlap"}},
		{name: "grants touching exactly at the boundary", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 990, 1000, "b", 2),
		}},
		{name: "overlap within slack", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 990, 995, "b", 2),
		}, slack: 5 * ms},
		{name: "overlap beyond slack", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 990, 994, "b", 2),
		}, slack: 5 * ms, want: []string{"overlap"}},
		{name: "waited counts from the call", ops: []Op{
			withValidity(acquired(1, 0, 510, "a", 1), 1000, 500), acquired(2, 1400, 1410, "b", 2),
		}, want: []string{"overlap"}},
		{name: "extend prolongs the interval into another grant", ops: []Op{
			acquired(1, 0, 10, "a", 1), extended(1, 900, 910, "a", 1), acquired(2, 1200, 1210, "b", 2),
		}, want: []string{"overlap"}},
		{name: "release ends the interval early", ops: []Op{
			acquired(1, 0, 10, "a", 1), released(1, 300, 310, "a", OK), acquired(2, 305, 315, "b", 2),
		}},
		{name: "release of unknown outcome ends it too", ops: []Op{
			acquired(1, 0, 10, "a", 1), released(1, 300, 900, "a", Unknown), acquired(2, 400, 410, "b", 2),
		}},
		{name: "refused extend ends the interval", ops: []Op{
			acquired(1, 0, 10, "a", 1), extendFailed(1, 400, 410, "a", Refused), acquired(2, 450, 460, "b", 2),
		}},
		{name: "unknown extend does not prolong it", ops: []Op{
			acquired(1, 0, 10, "a", 1), extendFailed(1, 900, 5000, "a", Unknown), acquired(2, 1200, 1210, "b", 2),
		}},
		{name: "another client's release does not end the holder's interval", ops: []Op{
			acquired(1, 0, 10, "a", 1), released(3, 100, 110, "a", OK), acquired(2, 200, 210, "b", 2),
		}, want: []string{"overlap"}},
		{name: "unknown acquire makes no interval", ops: []Op{
			acquireFailed(1, 0, 10, Unknown), acquired(2, 20, 30, "b", 1),
		}},
		{name: "answer after validity ran out is an empty interval", ops: []Op{
			withValidity(acquired(1, 0, 1500, "a", 1), 0, 50), acquired(2, 1200, 1210, "b", 2),
		}},
		{name: "other locks do not interfere", ops: []Op{
			acquired(1, 0, 10, "a", 1), onLock(acquired(2, 500, 510, "b", 1), "M"),
		}},
		{name: "token handed out twice", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 2000, 2010, "a", 2),
		}, want: []string{"token-reused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKinds(t, MutualExclusion(tt.ops, tt.slack), tt.want)
		})
	}
}

// TestFencesRealTime: with lock keys lost, a grant answered late may have
// started on the server before another grant that came and went (a real
// history of the key-deletion scenario): intervals order nothing then, and
// only a grant returned before another was sent binds.
func TestFencesRealTime(t *testing.T) {
	slow := acquired(2, 0, 160, "b", 4) // granted at once, answered after 160ms
	fast := acquired(1, 50, 52, "a", 5)
	fastGone := released(1, 54, 55, "a", OK)
	if got := FencesRealTime([]Op{slow, fast, fastGone}); len(got) != 0 {
		t.Errorf("FencesRealTime: %v, want nothing (the two were concurrent in real time)", got)
	}
	checkKinds(t, Fences([]Op{slow, fast, fastGone}), []string{"fence-regression"})
	checkKinds(t, FencesRealTime([]Op{
		acquired(1, 0, 10, "a", 5), released(1, 100, 110, "a", OK), acquired(2, 200, 210, "b", 4),
	}), []string{"fence-regression"})
}

func TestFences(t *testing.T) {
	tests := []struct {
		name string
		ops  []Op
		want []string
	}{
		{name: "increasing, extend keeps the fence", ops: []Op{
			acquired(1, 0, 10, "a", 1), extended(1, 500, 510, "a", 1), released(1, 600, 610, "a", OK),
			acquired(2, 605, 615, "b", 2), acquired(3, 2000, 2010, "c", 7),
		}},
		{name: "regression", ops: []Op{
			acquired(1, 0, 10, "a", 5), released(1, 100, 110, "a", OK), acquired(2, 200, 210, "b", 4),
		}, want: []string{"fence-regression"}},
		{name: "duplicate", ops: []Op{
			acquired(1, 0, 10, "a", 5), released(1, 100, 110, "a", OK), acquired(2, 200, 210, "b", 5),
		}, want: []string{"fence-duplicate"}},
		{name: "extend with a different fence", ops: []Op{
			acquired(1, 0, 10, "a", 5), extended(1, 500, 510, "a", 6),
		}, want: []string{"extend-fence"}},
		{name: "extend of a token never granted", ops: []Op{
			extended(1, 500, 510, "x", 6),
		}, want: []string{"extend-without-grant"}},
		{name: "late answer with an empty interval proves no order", ops: []Op{
			// Client 1 was granted fence 5 at once, but its answer took 2.5s;
			// client 2 waited and got fence 6 after that lease expired.
			withValidity(acquired(1, 0, 2500, "a", 5), 0, 50),
			withValidity(acquired(2, 100, 2070, "b", 6), 1000, 1960),
		}},
		{name: "real-time order still binds an empty interval", ops: []Op{
			acquired(1, 0, 10, "a", 5), released(1, 100, 110, "a", OK),
			withValidity(acquired(2, 200, 5000, "b", 4), 0, 10),
		}, want: []string{"fence-regression"}},
		{name: "concurrent calls ordered by their non-empty intervals", ops: []Op{
			// Both waited from 0; 2's interval starts after 1's ended, so 2
			// was granted second and needs the higher fence.
			acquired(1, 0, 10, "a", 5), released(1, 100, 110, "a", OK),
			withValidity(acquired(2, 0, 120, "b", 4), 1000, 110),
		}, want: []string{"fence-regression"}},
		{name: "overlapping leases are concurrent, not ordered", ops: []Op{
			// Lock keys lost: both held the lock from about 100ms, and
			// the one answered first got the higher fence.
			acquired(1, 0, 100, "a", 5), acquired(2, 50, 101, "b", 4),
		}},
		{name: "an earlier lease that ended still binds past an overlapping one", ops: []Op{
			acquired(1, 0, 10, "a", 9), released(1, 100, 110, "a", OK),
			acquired(2, 200, 300, "b", 5), acquired(3, 250, 301, "c", 4),
		}, want: []string{"fence-regression", "fence-regression"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKinds(t, Fences(tt.ops), tt.want)
		})
	}
}

func TestStore(t *testing.T) {
	// a holds [10, 300), then b holds [310, 1305).
	ops := []Op{
		acquired(1, 0, 10, "a", 1), released(1, 300, 305, "a", OK), acquired(2, 305, 310, "b", 2),
	}
	tests := []struct {
		name   string
		writes []Write
		want   []string
	}{
		{name: "fenced writes within their grants", writes: []Write{
			written(1, 100, "a", 1, true), written(2, 400, "b", 2, true), written(1, 450, "a", 1, false),
		}},
		{name: "stale write accepted", writes: []Write{
			written(1, 100, "a", 1, true), written(1, 450, "a", 1, true),
		}, want: []string{"stale-write"}},
		{name: "accepted fences go down", writes: []Write{
			written(2, 400, "b", 2, true), written(1, 450, "a", 1, true),
		}, want: []string{"fence-order", "stale-write"}},
		{name: "current fence rejected", writes: []Write{
			written(2, 400, "b", 2, true), written(2, 500, "b", 2, false),
		}, want: []string{"rejected-current"}},
		{name: "write naming no grant", writes: []Write{
			written(3, 400, "z", 3, true),
		}, want: []string{"write-without-grant"}},
		{name: "store order is by At, not by slice order", writes: []Write{
			written(2, 400, "b", 2, true), written(1, 100, "a", 1, true),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKinds(t, Store(tt.writes, ops), tt.want)
		})
	}
}

func TestCounter(t *testing.T) {
	tests := []struct {
		name   string
		writes []Write
		final  int64
		want   []string
	}{
		{name: "every increment counted", writes: []Write{
			incremented(1, 10, 1, true), incremented(2, 20, 2, true), incremented(1, 25, 2, false), incremented(3, 30, 3, true),
			written(1, 40, "t", 9, true),
		}, final: 3},
		{name: "lost increment: two clients read the same value", writes: []Write{
			incremented(1, 10, 1, true), incremented(2, 20, 2, true), incremented(3, 30, 2, true),
		}, final: 2, want: []string{"duplicate-increment", "lost-increment", "missing-increment"}},
		{name: "final value disagrees", writes: []Write{
			incremented(1, 10, 1, true), incremented(2, 20, 2, true),
		}, final: 1, want: []string{"lost-increment"}},
		{name: "value out of range", writes: []Write{
			incremented(1, 10, 1, true), incremented(2, 20, 3, true),
		}, final: 2, want: []string{"increment-out-of-range", "missing-increment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkKinds(t, Counter(tt.writes, tt.final), tt.want)
		})
	}
}

var testModel = LeaseModelParams{Rho: 0.01, Eps: 10 * ms}

func TestLinearizable(t *testing.T) {
	// With a TTL of 1s, Rho 1% and Eps 10ms, a lease acquired over [0, 10]
	// cannot expire before 980ms and has surely expired at 1030ms.
	tests := []struct {
		name string
		ops  []Op
		want porcupine.CheckResult
	}{
		{name: "sequential", ops: []Op{
			acquired(1, 0, 10, "a", 1), released(1, 100, 110, "a", OK),
			acquired(2, 200, 210, "b", 2), acquireFailed(3, 250, 260, Refused), extended(2, 300, 310, "b", 2),
			released(2, 400, 410, "b", OK), released(2, 500, 510, "b", Refused), acquired(3, 600, 610, "c", 3),
		}, want: porcupine.Ok},
		{name: "second grant while the first lease cannot have expired", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 500, 510, "b", 2),
		}, want: porcupine.Illegal},
		{name: "second grant after expHi", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 1100, 1110, "b", 2),
		}, want: porcupine.Ok},
		{name: "second grant inside the expiry window", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquired(2, 975, 985, "b", 2),
		}, want: porcupine.Ok},
		{name: "refused acquire after expHi", ops: []Op{
			acquired(1, 0, 10, "a", 1), acquireFailed(2, 1100, 1110, Refused),
		}, want: porcupine.Illegal},
		{name: "refused acquire of a free lock", ops: []Op{
			acquireFailed(2, 100, 110, Refused),
		}, want: porcupine.Illegal},
		{name: "unknown acquire, then another client refused", ops: []Op{
			acquireFailed(1, 0, 10, Unknown), acquireFailed(2, 100, 110, Refused),
		}, want: porcupine.Ok},
		{name: "unknown acquire, then another client granted in its window", ops: []Op{
			acquireFailed(1, 0, 10, Unknown), acquired(2, 100, 110, "b", 1),
		}, want: porcupine.Ok},
		{name: "fence not above the last", ops: []Op{
			acquired(1, 0, 10, "a", 3), released(1, 100, 110, "a", OK), acquired(2, 200, 210, "b", 3),
		}, want: porcupine.Illegal},
		{name: "extend changes the fence", ops: []Op{
			acquired(1, 0, 10, "a", 3), extended(1, 100, 110, "a", 4),
		}, want: porcupine.Illegal},
		{name: "holder's release refused while the lease is surely live", ops: []Op{
			acquired(1, 0, 10, "a", 1), released(1, 100, 110, "a", Refused),
		}, want: porcupine.Illegal},
		{name: "holder's release refused after the lease may have expired", ops: []Op{
			acquired(1, 0, 10, "a", 1), released(1, 990, 1000, "a", Refused),
		}, want: porcupine.Ok},
		{name: "unknown release, then a refused and a granted acquire", ops: []Op{
			acquired(1, 0, 10, "a", 1), released(1, 100, 110, "a", Unknown),
			acquireFailed(2, 200, 210, Refused), acquired(3, 300, 310, "c", 2),
		}, want: porcupine.Ok},
		{name: "unknown extend may have prolonged the lease", ops: []Op{
			acquired(1, 0, 10, "a", 1), extendFailed(1, 900, 910, "a", Unknown), acquireFailed(2, 1500, 1510, Refused),
		}, want: porcupine.Ok},
		{name: "unknown kind", ops: []Op{
			{Client: 1, Kind: "status", Lock: "L", Call: 0, Return: 10 * ms, Outcome: OK},
		}, want: porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := Linearizable(tt.ops, testModel, 10*time.Second)
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestUnlinearizedAndVisualization(t *testing.T) {
	ops := []Op{
		onLock(acquired(1, 0, 10, "a", 1), "good"), onLock(released(1, 100, 110, "a", OK), "good"),
		acquired(1, 0, 10, "b", 1), acquired(2, 500, 510, "c", 2),
	}
	result, info := Linearizable(ops, testModel, 10*time.Second)
	if result != porcupine.Illegal {
		t.Fatalf("got %s, want %s", result, porcupine.Illegal)
	}
	if got, want := Unlinearized(ops, info), []string{"L"}; !slices.Equal(got, want) {
		t.Errorf("Unlinearized: got %v, want %v", got, want)
	}
	path := filepath.Join(t.TempDir(), "L.html")
	if err := WriteVisualization(path, ops, "L", testModel, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Only the failing lock is drawn: "good" has no ops in it.
	if !strings.Contains(string(html), "op #3") || strings.Contains(string(html), "op #1\"") {
		t.Errorf("visualization of %d bytes does not show just lock L's ops", len(html))
	}
}

// simulate runs clients against a correct model of lockd and a fenced
// store, and returns n ops, the store's log and the final counters:
// concurrent, with expiries, extends and unknownPercent unknown outcomes.
func simulate(seed uint64, n, unknownPercent int) ([]Op, []Write, map[string]int64) {
	const (
		clients = 8
		ttl     = 300 * ms
		margin  = 5 * ms // the drift margin lockd takes off ttl_ms
	)
	rng := rand.New(rand.NewPCG(seed, seed^0x5afe))
	dur := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo)+1)) }
	locks := []string{"a", "b", "c", "d"}

	type server struct {
		token   string
		fence   int64
		expires time.Duration
		counter int64 // the store's counter and highest fence, per lock
		top     int64
	}
	servers := make(map[string]*server)
	for _, l := range locks {
		servers[l] = &server{}
	}
	type client struct {
		next  time.Duration
		lock  string
		token string
		fence int64
	}
	cs := make([]client, clients)
	var ops []Op
	var writes []Write
	var lastServer time.Duration
	var tokens int
	for len(ops) < n {
		c := 0
		for i := range cs {
			if cs[i].next < cs[c].next {
				c = i
			}
		}
		cl := &cs[c]
		call := cl.next
		at := max(lastServer, call+dur(0, 2*ms)) + time.Microsecond
		lastServer = at
		ret := at + dur(0, 2*ms)
		unknown := rng.IntN(100) < unknownPercent
		effect := !unknown || rng.IntN(2) == 0
		op := Op{Client: c, Call: call, Return: ret, Outcome: Refused, TTL: ttl}
		validity := max(ttl-margin-(ret-call), 0)
		think := dur(time.Millisecond, 50*ms)

		if cl.token == "" {
			op.Kind, op.Lock = KindAcquire, locks[rng.IntN(len(locks))]
			s := servers[op.Lock]
			if s.token == "" || at >= s.expires {
				tokens++
				if effect {
					s.token, s.fence, s.expires = "t"+strconv.Itoa(tokens), s.fence+1, at+ttl
				}
				op.Outcome, op.Token, op.Fence, op.Validity = OK, s.token, s.fence, validity
				if !unknown {
					cl.lock, cl.token, cl.fence = op.Lock, op.Token, op.Fence
					think = dur(2*ms, 400*ms)
					if w := ret + time.Millisecond; w < call+validity {
						// Increment once inside the validity: fenced, so accepted.
						s.counter++
						s.top = max(s.top, s.fence)
						writes = append(writes, Write{Client: c, Lock: op.Lock, Fence: s.fence, Token: s.token, At: w,
							Accepted: true, Kind: KindIncrement, Value: s.counter})
					}
				}
			}
		} else {
			op.Lock, op.Token = cl.lock, cl.token
			s := servers[op.Lock]
			live := s.token == cl.token && at < s.expires
			if rng.IntN(5) == 0 {
				op.Kind = KindExtend
				if live {
					if effect {
						s.expires = at + ttl
					}
					op.Outcome, op.Fence, op.Validity = OK, s.fence, validity
					think = dur(2*ms, 400*ms)
				}
			} else {
				op.Kind = KindRelease
				op.TTL = 0
				if live {
					if effect {
						s.token = ""
					}
					op.Outcome = OK
				}
			}
			if op.Kind == KindRelease || op.Outcome != OK || unknown {
				cl.token = ""
			}
		}
		if unknown {
			op.Outcome, op.Fence, op.Validity = Unknown, 0, 0
			if op.Kind == KindAcquire {
				op.Token = ""
			}
		}
		ops = append(ops, op)
		cl.next = ret + think
	}
	finals := make(map[string]int64)
	for _, l := range locks {
		finals[l] = servers[l].counter
	}
	return ops, writes, finals
}

// TestSuiteSizedHistory runs every checker on a history the size of a
// safety run (8 clients, 4 locks, about 2,000 ops with expiries and unknown
// outcomes): all must pass, and porcupine must finish well inside a run's
// budget.
func TestSuiteSizedHistory(t *testing.T) {
	for _, pct := range []int{1, 20} {
		t.Run(fmt.Sprintf("%d%% unknown", pct), func(t *testing.T) { suiteSizedHistory(t, pct) })
	}
}

func suiteSizedHistory(t *testing.T, unknownPercent int) {
	ops, writes, finals := simulate(uint64(unknownPercent), 2000, unknownPercent)
	var unknown int
	for _, op := range ops {
		if op.Outcome == Unknown {
			unknown++
		}
	}
	if unknown == 0 {
		t.Fatal("the simulation produced no unknown outcomes")
	}

	start := time.Now()
	r := Run(ops, writes, finals, Config{Model: testModel, Timeout: time.Minute})
	elapsed := time.Since(start)
	t.Logf("%d ops (%d unknown), %d writes, checked in %v\n%s", len(ops), unknown, len(writes), elapsed, r)
	if !r.OK() {
		t.Errorf("a valid history failed:\n%s", r)
	}
	if limit := 20 * time.Second; elapsed > limit {
		t.Errorf("checking took %v, want under %v", elapsed, limit)
	}

	// One wrong answer among the 2,000 must still be found: a holder's
	// release refused while its lease is surely live.
	granted := make(map[string]Op)
	for i, op := range ops {
		if op.Kind == KindAcquire && op.Outcome == OK {
			granted[op.Token] = op
		}
		if a, ok := granted[op.Token]; ok && op.Kind == KindRelease && op.Outcome == OK && op.Return < a.Call+200*ms {
			bad := slices.Clone(ops)
			bad[i].Outcome = Refused
			start := time.Now()
			result, info := Linearizable(bad, testModel, time.Minute)
			if got, want := Unlinearized(bad, info), []string{op.Lock}; result != porcupine.Illegal || !slices.Equal(got, want) {
				t.Errorf("op #%d refused: got %s %v, want %s %v", i, result, got, porcupine.Illegal, want)
			}
			t.Logf("op #%d refused: %s in %v", i, result, time.Since(start))
			return
		}
	}
	t.Fatal("the simulation produced no early release to break")
}

func TestRunReportsViolations(t *testing.T) {
	ops := []Op{acquired(1, 0, 10, "a", 1), acquired(2, 500, 510, "b", 1)}
	writes := []Write{incremented(1, 100, 1, true), incremented(2, 600, 1, true)}
	for i := range writes {
		writes[i].Token = []string{"a", "b"}[i]
	}
	r := Run(ops, writes, map[string]int64{"L": 1}, Config{Model: testModel, Timeout: 10 * time.Second})
	if r.OK() {
		t.Fatalf("got OK for a double grant:\n%s", r)
	}
	got := make(map[string]int)
	for _, c := range r.Checks {
		got[c.Checker] = len(c.Violations)
	}
	want := map[string]int{CheckerMutualExclusion: 1, CheckerFences: 1, CheckerStore: 0, CheckerCounter: 3, CheckerLinearizable: 1}
	for checker, n := range want {
		if got[checker] != n {
			t.Errorf("%s: got %d violations, want %d\n%s", checker, got[checker], n, r)
		}
	}
	if r.Linearizability != porcupine.Illegal || !slices.Equal(r.Unlinearized, []string{"L"}) {
		t.Errorf("got %s %v, want Illegal [L]", r.Linearizability, r.Unlinearized)
	}
}
