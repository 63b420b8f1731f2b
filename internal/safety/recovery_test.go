package safety

import (
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/safety/check"
)

// TestRecovery feeds recovery histories in which a lock is granted again
// late, or never, after the fault: the liveness check must see both, over
// the hot locks and, for Scenario.EveryName, over every lock.
func TestRecovery(t *testing.T) {
	const s = time.Second
	acquire := func(lock string, call, ret time.Duration, outcome check.Outcome) check.Op {
		return check.Op{Client: 1, Kind: check.KindAcquire, Lock: lock, Call: call, Return: ret, Outcome: outcome}
	}
	// The fault ends at 10 s. Every hot lock is granted again by 12.5 s;
	// own-0, a private lock, only at 14 s; own-1 never, though it was
	// granted before the fault and refused after it.
	ops := []check.Op{
		acquire("hot-0", 9*s, 9*s+s/10, check.OK),
		acquire("hot-0", 10*s+s/2, 11*s, check.OK),
		acquire("hot-1", 9*s+s/2, 10*s+s/2, check.OK), // sent before the fault ended: does not count
		acquire("hot-1", 11*s, 12*s, check.OK),
		acquire("hot-2", 11*s, 11*s+s/10, check.Unknown),
		acquire("hot-2", 12*s, 12*s+s/2, check.OK),
		acquire("own-0", 13*s, 14*s, check.OK),
		acquire("own-1", 5*s, 5*s+s/10, check.OK),
		acquire("own-1", 11*s, 12*s, check.Refused),
	}
	tests := []struct {
		name  string
		names []string
		want  time.Duration
	}{
		{"hot locks", Hot, 2*s + s/2},
		{"a private lock granted late", []string{"hot-0", "own-0"}, 4 * s},
		{"a private lock never granted again", []string{"hot-0", "own-0", "own-1"}, -1},
		{"every lock", allLocks(), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := recovery(ops, 10*s, tc.names); got != tc.want {
				t.Errorf("recovery(%v) = %v, want %v", tc.names, got, tc.want)
			}
		})
	}
}
