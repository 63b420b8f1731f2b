package safety

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/safety/check"
)

// TestClientUses runs one acquire and release per kind of Use against a
// fake lockd: each must go to its kind's path with the fields of
// doc/KINDS.md, and the recorded op must carry what the checkers of issue
// 16 read (Mode, Limit, Fair, LockDelay, Queued).
func TestClientUses(t *testing.T) {
	type request struct {
		path string
		body map[string]any
	}
	var mu sync.Mutex
	var got []request
	queuedMs := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		got = append(got, request{r.URL.Path, body})
		q := queuedMs
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "/release") {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		ans := map[string]any{"token": "t1", "fence": 7, "ttl_ms": 1900, "waited_ms": 30}
		if q > 0 {
			ans["queued_ms"] = q
		}
		_ = json.NewEncoder(w).Encode(ans)
	}))
	defer srv.Close()

	tests := []struct {
		name     string
		use      Use
		shared   bool
		queuedMs int
		wantPath string
		wantBody map[string]any // besides ttl, wait and owner
		wantOp   check.Op       // Mode, Limit, Fair, LockDelay, Queued
	}{
		{name: "plain lock", wantPath: "/v1/locks/n/",
			wantBody: map[string]any{}},
		{name: "semaphore", use: Use{Limit: 3}, wantPath: "/v1/semaphores/n/",
			wantBody: map[string]any{"limit": 3.0}, wantOp: check.Op{Limit: 3}},
		{name: "shared", use: Use{Shared: 0.5}, shared: true, wantPath: "/v1/locks/n/",
			wantBody: map[string]any{"mode": "shared"}, wantOp: check.Op{Mode: check.ModeShared}},
		{name: "exclusive beside shared, queued by lockd", use: Use{Shared: 0.5}, queuedMs: 12, wantPath: "/v1/locks/n/",
			wantBody: map[string]any{"mode": "exclusive"},
			wantOp:   check.Op{Mode: check.ModeExclusive, Fair: true, Queued: 12 * time.Millisecond}},
		{name: "fair with lock-delay", use: Use{Fair: true, LockDelay: 1500 * time.Millisecond}, queuedMs: 40, wantPath: "/v1/locks/n/",
			wantBody: map[string]any{"fair": true, "lock_delay": "1.5s"},
			wantOp:   check.Op{Fair: true, LockDelay: 1500 * time.Millisecond, Queued: 40 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got, queuedMs = nil, tc.queuedMs
			mu.Unlock()
			var ops []check.Op
			cfg := ClientConfig{ID: 1, Lockds: []string{srv.URL}, Pin: 0, TTL: TTL, Wait: Wait,
				Base: NewClock().Base, Uses: map[string]Use{"n": tc.use}}
			c := NewClient(cfg, func(op check.Op) { ops = append(ops, op) })
			defer c.Close()
			l, outcome := c.acquire("n", Wait, tc.shared)
			if outcome != check.OK {
				t.Fatalf("acquire: outcome %v, want ok", outcome)
			}
			c.Release(l)

			mu.Lock()
			defer mu.Unlock()
			if len(got) != 2 {
				t.Fatalf("got %d requests, want acquire and release", len(got))
			}
			if want := tc.wantPath + "acquire"; got[0].path != want {
				t.Errorf("acquire path %s, want %s", got[0].path, want)
			}
			if want := tc.wantPath + "release"; got[1].path != want {
				t.Errorf("release path %s, want %s", got[1].path, want)
			}
			body := got[0].body
			for _, k := range []string{"ttl", "wait", "owner"} {
				if body[k] == nil {
					t.Errorf("acquire body has no %s: %v", k, body)
				}
				delete(body, k)
			}
			if b, _ := json.Marshal(body); string(b) != mustJSON(t, tc.wantBody) {
				t.Errorf("acquire body (without ttl, wait, owner) %s, want %s", b, mustJSON(t, tc.wantBody))
			}
			op := ops[0]
			if op.Mode != tc.wantOp.Mode || op.Limit != tc.wantOp.Limit || op.Fair != tc.wantOp.Fair ||
				op.LockDelay != tc.wantOp.LockDelay || op.Queued != tc.wantOp.Queued {
				t.Errorf("op mode %q limit %d fair %v lock-delay %v queued %v, want %q %d %v %v %v",
					op.Mode, op.Limit, op.Fair, op.LockDelay, op.Queued,
					tc.wantOp.Mode, tc.wantOp.Limit, tc.wantOp.Fair, tc.wantOp.LockDelay, tc.wantOp.Queued)
			}
			if wantExclusive := tc.use.Limit == 0 && !tc.shared; l.exclusive != wantExclusive {
				t.Errorf("lease exclusive %v, want %v (only exclusive holders write to the store)", l.exclusive, wantExclusive)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWorkloadUses checks that a workload of several Uses spreads them over
// the hot names and the private ones, and that none leaves every name plain.
func TestWorkloadUses(t *testing.T) {
	w := Workload{Uses: []Use{{Limit: 2}, {Shared: 0.5}, {Fair: true, LockDelay: time.Second}}}
	m := w.uses()
	if len(m) != len(allLocks()) {
		t.Errorf("uses cover %d names, want all %d", len(m), len(allLocks()))
	}
	for name, want := range map[string]Use{"hot-0": {Limit: 2}, "hot-1": {Shared: 0.5}, "hot-2": w.Uses[2], "own-3": {Limit: 2}, "own-5": w.Uses[2]} {
		if got := m[name]; got != want {
			t.Errorf("use of %s = %+v, want %+v", name, got, want)
		}
	}
	if got := w.maxDelay(); got != time.Second {
		t.Errorf("maxDelay = %v, want 1s", got)
	}
	if got := (Workload{}).uses(); got != nil {
		t.Errorf("the zero workload's uses = %v, want none (plain locks)", got)
	}
}

// TestTable checks that the summary has one column per checker, in every
// row, and "–" for a checker that had nothing to look at.
func TestTable(t *testing.T) {
	rows := []Row{{Scenario: "s", Mode: S1, Faults: "none", Result: "PASS",
		Violations: map[string]int{check.CheckerMutualExclusion: 0, check.CheckerSemaphore: 2, check.CheckerLinearizable: -1}}}
	lines := strings.Split(strings.TrimSpace(Table(rows)), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want header, rule and one row:\n%s", len(lines), Table(rows))
	}
	want := strings.Count(lines[0], "|")
	for _, l := range lines[1:] {
		if got := strings.Count(l, "|"); got != want {
			t.Errorf("%d cells in %q, want %d", got, l, want)
		}
	}
	for _, s := range []string{"| semaphore | shared | fair | lock delay |", "| 0 | – | – | – | no verdict | 2 | – | – | – |"} {
		if !strings.Contains(Table(rows), s) {
			t.Errorf("table lacks %q:\n%s", s, Table(rows))
		}
	}
}
