package check

import (
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"
)

// LeaseModelParams are the timing bounds of the lease model: a lease of TTL
// lasts between TTL·(1−Rho) and TTL·(1+Rho) on the client's clock, give or
// take Eps.
type LeaseModelParams struct {
	Rho float64       // clock-rate drift bound, e.g. 0.01
	Eps time.Duration // scheduling and measuring slack, e.g. 50ms on 2 cores
}

// forever is the Return of an op whose outcome is unknown: it may take
// effect at any later moment. It is far from math.MaxInt64 so that adding a
// TTL cannot overflow.
const forever = time.Duration(math.MaxInt64 / 4)

// leaseInput is what a client sent. The Call time travels with it so that
// the step function stays pure.
type leaseInput struct {
	Lock   string
	Kind   string
	Client int
	Token  string // extend/release: the token sent
	TTL    time.Duration
	Call   time.Duration
	// LockDelay is the acquire's lock-delay: once the lease expires
	// unreleased, the name stays refused this long.
	LockDelay time.Duration
	// Queue is set on every op of a name that some acquire waited on
	// fairly: an acquire may then be refused while the lock is free,
	// because waiters are queued ahead of it (a vanished one is skipped
	// only after its liveness lease runs out).
	Queue bool
}

// leaseOutput is what the client got back, and when.
type leaseOutput struct {
	Outcome Outcome
	Token   string // acquire OK: the new lease's token
	Fence   int64  // acquire/extend OK
	Return  time.Duration
}

// leaseState is one lock as the model sees it. The zero value is not the
// initial state: use initialState.
type leaseState struct {
	Held      bool
	Client    int
	Token     string // "" when an acquire of unknown outcome took effect: nobody knows the token
	Fence     int64  // the holder's fence, meaningful when Token != ""
	LastFence int64  // lower bound of the highest fence issued so far; math.MinInt64 before any
	ExpLo     time.Duration
	ExpHi     time.Duration // the lease has surely expired from here on
	Delay     time.Duration // the holder's lock-delay: after expiry the name stays refused this long
}

// stateSeed makes equal states hash alike within this process, which is all
// porcupine's cache needs.
var stateSeed = maphash.MakeSeed()

func initialState() leaseState {
	return leaseState{LastFence: math.MinInt64}
}

// window is the expiry window of a lease of ttl requested at call and
// confirmed at ret: it cannot have expired before expLo and has surely
// expired at expHi.
func (p LeaseModelParams) window(ttl, call, ret time.Duration) (expLo, expHi time.Duration) {
	expLo = call + time.Duration(float64(ttl)*(1-p.Rho)) - p.Eps
	if ret >= forever {
		return expLo, forever
	}
	return expLo, ret + time.Duration(float64(ttl)*(1+p.Rho)) + p.Eps
}

// delay is the window, on the client's clock, that a lock-delay of d
// measured by the server lasts: at least lo, at most hi.
func (p LeaseModelParams) delay(d time.Duration) (lo, hi time.Duration) {
	return time.Duration(float64(d) * (1 - p.Rho)), time.Duration(float64(d) * (1 + p.Rho))
}

// step returns every state the lock may be in after in/out was applied to
// s: none if the answer is impossible, two if the outcome is unknown and
// both "no effect" and "took effect" are possible.
func (p LeaseModelParams) step(s leaseState, in leaseInput, out leaseOutput) []leaseState {
	holds := s.Held && s.Token != "" && s.Token == in.Token
	// The previous lease may have run out before the server answered.
	mayBeExpired := s.ExpLo <= out.Return
	// An expired lease that was not released keeps the name refused for
	// its lock-delay.
	delayLo, delayHi := p.delay(s.Delay)
	switch in.Kind {
	case KindAcquire:
		switch out.Outcome {
		case OK:
			if (!s.Held || s.ExpLo+delayLo <= out.Return) && out.Fence > s.LastFence {
				n := leaseState{Held: true, Client: in.Client, Token: out.Token, Fence: out.Fence, LastFence: out.Fence,
					Delay: in.LockDelay}
				n.ExpLo, n.ExpHi = p.window(in.TTL, in.Call, out.Return)
				return []leaseState{n}
			}
		case Refused:
			if in.Queue || (s.Held && in.Call < s.ExpHi+delayHi) {
				return []leaseState{s}
			}
		case Unknown:
			// Taking effect needs a free lock or an expired lease; with a
			// Return of forever the lease has always had time to expire.
			// It may also have taken the lock without a fence: a lockd
			// killed between SET NX and the fence step leaves a key that
			// holds the lock until its TTL, and no fence was used up. So
			// the next fence need only exceed the last one known.
			n := leaseState{Held: true, Client: in.Client, LastFence: s.LastFence, Delay: in.LockDelay}
			n.ExpLo, n.ExpHi = p.window(in.TTL, in.Call, forever)
			return []leaseState{s, n}
		}
	case KindRelease:
		canRelease := holds && in.Call < s.ExpHi
		switch out.Outcome {
		case OK:
			if canRelease {
				return []leaseState{{LastFence: s.LastFence}}
			}
		case Refused:
			if !holds || mayBeExpired {
				return []leaseState{s}
			}
		case Unknown:
			if canRelease {
				return []leaseState{s, {LastFence: s.LastFence}}
			}
			return []leaseState{s}
		}
	case KindExtend:
		canExtend := holds && in.Call < s.ExpHi
		switch out.Outcome {
		case OK:
			if canExtend && out.Fence == s.Fence {
				n := s
				n.ExpLo, n.ExpHi = p.window(in.TTL, in.Call, out.Return)
				return []leaseState{n}
			}
		case Refused:
			if !holds || mayBeExpired {
				return []leaseState{s}
			}
		case Unknown:
			if canExtend {
				n := s
				n.ExpLo, n.ExpHi = p.window(in.TTL, in.Call, forever)
				return []leaseState{s, n}
			}
			return []leaseState{s}
		}
	}
	return nil
}

// LeaseModel is the porcupine model of one lease-based lock per lock name
// (section 8.2 of the safety notes), partitioned by lock.
//
// Acquire OK (fence f) needs a free lock or a lease that may have expired
// (expLo <= return), and f above every fence issued before. Acquire Refused
// needs a holder whose lease had not surely expired (call < expHi). Release
// and Extend OK need the caller's token to hold and call < expHi; Refused
// needs another or no holder, or a lease that may have expired. An Extend
// keeps the fence. An op of unknown outcome returns at forever and may or
// may not have taken effect; an acquire that did leaves a holder whose
// token and fence nobody knows (it may have none: lockd can die between
// taking the key and assigning the fence), so the next fence must only
// exceed the last one known.
//
// A lease with a lock-delay that was not released keeps the name refused
// for the delay after it expires: Acquire OK then needs expLo plus the
// delay (less drift) by its return, and Acquire Refused is possible until
// expHi plus the delay (with drift). On a name with a fair queue an Acquire
// may be refused at any time (see leaseInput.Queue). Names held shared or
// as semaphores are not modelled (see Linearizable).
func LeaseModel(params LeaseModelParams) porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition: partitionByLock,
		Init:      func() []interface{} { return []interface{}{initialState()} },
		Step: func(state, input, output interface{}) []interface{} {
			next := params.step(state.(leaseState), input.(leaseInput), output.(leaseOutput))
			states := make([]interface{}, len(next))
			for i, s := range next {
				states[i] = s
			}
			return states
		},
		Equal:             func(a, b interface{}) bool { return a.(leaseState) == b.(leaseState) },
		Hash:              func(state interface{}) uint64 { return maphash.Comparable(stateSeed, state.(leaseState)) },
		DescribeOperation: describeLeaseOp,
		DescribeState:     describeLeaseState,
		DescribeOperationMetadata: func(info interface{}) string {
			if info == nil {
				return ""
			}
			return fmt.Sprintf("op #%d", info.(int))
		},
	}
	return nm.ToModel()
}

func partitionByLock(history []porcupine.Operation) [][]porcupine.Operation {
	byLock := make(map[string][]porcupine.Operation)
	for _, op := range history {
		lock := op.Input.(leaseInput).Lock
		byLock[lock] = append(byLock[lock], op)
	}
	var parts [][]porcupine.Operation
	for _, lock := range slices.Sorted(maps.Keys(byLock)) {
		parts = append(parts, byLock[lock])
	}
	return parts
}

func describeLeaseOp(input, output interface{}) string {
	in, out := input.(leaseInput), output.(leaseOutput)
	s := fmt.Sprintf("c%d %s", in.Client, in.Kind)
	if in.Token != "" {
		s += " " + tokenHash(in.Token)
	}
	s += " → " + out.Outcome.String()
	if out.Outcome == OK && in.Kind != KindRelease {
		s += fmt.Sprintf(" fence %d", out.Fence)
	}
	if out.Token != "" {
		s += " " + tokenHash(out.Token)
	}
	return s
}

func describeLeaseState(state interface{}) string {
	s := state.(leaseState)
	last := "none"
	if s.LastFence != math.MinInt64 {
		last = fmt.Sprint(s.LastFence)
	}
	if !s.Held {
		return "free, last fence " + last
	}
	hi := "∞"
	if s.ExpHi < forever {
		hi = s.ExpHi.String()
	}
	delay := ""
	if s.Delay > 0 {
		delay = fmt.Sprintf(", then lock-delay %v", s.Delay)
	}
	if s.Token == "" {
		return fmt.Sprintf("maybe held by c%d (unknown acquire), fence > %s, expires in [%v, %s]%s", s.Client, last, s.ExpLo, hi, delay)
	}
	return fmt.Sprintf("held by c%d %s fence %d, expires in [%v, %s]%s", s.Client, tokenHash(s.Token), s.Fence, s.ExpLo, hi, delay)
}

// operations turns the history into porcupine's form, leaving out the names
// held shared or as semaphores (see Linearizable). Metadata is the op's
// index in ops, shown in the visualization.
func operations(ops []Op) []porcupine.Operation {
	shared := sharedNames(ops)
	fair := make(map[string]bool)
	for _, op := range ops {
		if op.Kind == KindAcquire && op.Fair {
			fair[op.Lock] = true
		}
	}
	out := make([]porcupine.Operation, 0, len(ops))
	for i, op := range ops {
		if shared[op.Lock] {
			continue
		}
		ret := op.Return
		if op.Outcome == Unknown {
			ret = forever
		}
		in := leaseInput{Lock: op.Lock, Kind: op.Kind, Client: op.Client, TTL: op.TTL, Call: op.Call,
			LockDelay: op.LockDelay, Queue: fair[op.Lock]}
		o := leaseOutput{Outcome: op.Outcome, Return: ret}
		if op.Kind == KindAcquire {
			o.Token = op.Token
		} else {
			in.Token = op.Token
		}
		if op.Outcome == OK {
			o.Fence = op.Fence
		}
		out = append(out, porcupine.Operation{ClientId: op.Client, Input: in, Call: int64(op.Call), Output: o, Return: int64(ret), Metadata: i})
	}
	return out
}

// Linearizable checks ops against LeaseModel(params) with porcupine, one
// partition per lock, for at most timeout (0: no limit). Unknown means it
// ran out of time. The LinearizationInfo feeds Unlinearized and porcupine's
// visualizer.
//
// Preconditions: every lock is free when the history starts and clients are
// sequential. An op of another Kind fits no state and makes its lock Illegal.
//
// The model has one holder at a time, so names that some acquire asks to
// hold shared or as a semaphore are left out (Semaphores and
// SharedExclusion judge those); fair queues and lock-delays are modelled.
func Linearizable(ops []Op, params LeaseModelParams, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(LeaseModel(params), operations(ops), timeout)
}

// Unlinearized returns the locks, sorted, whose partition porcupine could
// not linearize completely: the illegal ones after an Illegal verdict, and
// also the unfinished ones after an Unknown. info must come from
// Linearizable(ops, ...).
func Unlinearized(ops []Op, info porcupine.LinearizationInfo) []string {
	count := make(map[string]int)
	for _, op := range operations(ops) {
		count[op.Input.(leaseInput).Lock]++
	}
	partials := info.PartialLinearizations()
	var out []string
	for i, lock := range slices.Sorted(maps.Keys(count)) {
		if i >= len(partials) {
			break
		}
		longest := 0
		for _, p := range partials[i] {
			longest = max(longest, len(p))
		}
		if longest < count[lock] {
			out = append(out, lock)
		}
	}
	return out
}

// WriteVisualization checks the ops of lock alone (all ops when lock is
// "") and writes porcupine's HTML view of the result to path: the longest
// partial linearizations and where each got stuck. A failing partition is
// easier to read on its own than among every lock of the run.
func WriteVisualization(path string, ops []Op, lock string, params LeaseModelParams, timeout time.Duration) error {
	var mine []porcupine.Operation
	for _, op := range operations(ops) {
		if lock == "" || op.Input.(leaseInput).Lock == lock {
			mine = append(mine, op)
		}
	}
	model := LeaseModel(params)
	_, info := porcupine.CheckOperationsVerbose(model, mine, timeout)
	return porcupine.VisualizePath(model, info, path)
}
