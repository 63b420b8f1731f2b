package main

import (
	"cmp"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

func TestKindUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--limit", "-1", "name", "--", "true"},
		{"run", "--limit", "2", "--shared", "name", "--", "true"},
		{"run", "--lock-delay", "soon", "name", "--", "true"},
		{"run", "--lock-delay", "-1s", "name", "--", "true"},
		{"acquire", "--limit", "2", "--shared", "name"},
	} {
		r := execute(t, lockctl("http://127.0.0.1:1", args...))
		if r.code != exitUsage {
			t.Errorf("lockctl %q: exit %d, want %d; stderr %s", args, r.code, exitUsage, r.stderr)
		}
	}
}

// waitQueue returns once n wait in the lock name's queue.
func (l *lockd) waitQueue(t *testing.T, name string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		info, err := l.c.Get(context.Background(), name)
		if err == nil && info.Queue == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue of %s: %+v %v, want %d waiting", name, info, err, n)
		}
	}
}

func TestRunSemaphore(t *testing.T) {
	l := startLockd(t)
	ctx := context.Background()
	var permits []*client.Lease
	for range 2 {
		p, err := l.c.AcquireSemaphore(ctx, "slots", 2, client.AcquireOptions{Owner: "test", TTL: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		permits = append(permits, p)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--limit", "2", "-n", "slots", "--", "true"}, `2 of 2 permits held, the latest by "test"`},
		{[]string{"run", "--limit", "3", "-n", "slots", "--", "true"}, "--limit 2"},
		{[]string{"run", "-n", "slots", "--", "true"}, "held as a semaphore"},
	} {
		if r := execute(t, lockctl(l.URL, tc.args...)); r.code != exitBusy || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d and %q", tc.args, r.code, r.stderr, exitBusy, tc.want)
		}
	}
	if err := permits[0].Release(ctx); err != nil {
		t.Fatal(err)
	}
	r := execute(t, lockctl(l.URL, "run", "--limit", "2", "-n", "slots", "--", "sh", "-c", `echo "$LOCK_FENCE"`))
	if fence, err := strconv.ParseInt(strings.TrimSpace(r.stdout), 10, 64); r.code != 0 || err != nil || fence <= permits[1].Fence() {
		t.Errorf("run with a free permit: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	info, err := l.c.GetSemaphore(ctx, "slots")
	if err != nil || len(info.Holders) != 1 || info.Fence != permits[1].Fence() {
		t.Errorf("after the run: %+v %v, want only the test's permit left", info, err)
	}
	if err := permits[1].Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRunSemaphoreBoundsConcurrency runs three lockctl --limit 2 on one
// name: their commands log start and end times, which must never show
// three at once, and show two.
func TestRunSemaphoreBoundsConcurrency(t *testing.T) {
	l := startLockd(t)
	script := `echo "$(date +%s%N) 1" >> "$LOG"; sleep 1; echo "$(date +%s%N) -1" >> "$LOG"`
	b := runTogether(t, 3, script, l.URL, "run", "--limit", "2", "--ttl", "2s", "--wait", "20s", "builders")
	type event struct{ at, delta int64 }
	var events []event
	for line := range strings.Lines(string(b)) {
		var e event
		f := strings.Fields(line)
		if len(f) == 2 {
			e.at, _ = strconv.ParseInt(f[0], 10, 64)
			e.delta, _ = strconv.ParseInt(f[1], 10, 64)
		}
		events = append(events, e)
	}
	// Ends sort before starts at the same nanosecond.
	slices.SortFunc(events, func(a, b event) int { return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.delta, b.delta)) })
	most, n := 0, int64(0)
	for _, e := range events {
		n += e.delta
		most = max(most, int(n))
	}
	if len(events) != 6 || most != 2 {
		t.Errorf("log %q: at most %d at once, want 2", b, most)
	}
}

func TestRunShared(t *testing.T) {
	l := startLockd(t)
	ctx := context.Background()
	reader, err := l.c.Acquire(ctx, "doc", client.AcquireOptions{Mode: client.Shared, Owner: "test", TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Release(ctx)
	if r := execute(t, lockctl(l.URL, "run", "--shared", "-n", "doc", "--", "true")); r.code != 0 {
		t.Errorf("second reader: exit %d: %s", r.code, r.stderr)
	}
	if r := execute(t, lockctl(l.URL, "run", "-n", "doc", "--", "true")); r.code != exitBusy || !strings.Contains(r.stderr, `held shared by "test"`) {
		t.Errorf("writer among readers: exit %d, stderr %s", r.code, r.stderr)
	}
}

// TestRunFair queues two lockctl --fair behind a holder: their commands
// run in the order the waits began.
func TestRunFair(t *testing.T) {
	l := startLockd(t)
	holder := l.hold(t, "fifo", 30*time.Second)
	log := filepath.Join(t.TempDir(), "log")
	var waiters []*started
	for i, who := range []string{"first", "second", "third"} {
		cmd := lockctl(l.URL, "run", "--fair", "--wait", "20s", "fifo", "--", "sh", "-c", `echo "$WHO" >> "$LOG"`)
		cmd.Env = append(cmd.Env, "LOG="+log, "WHO="+who)
		waiters = append(waiters, startCmd(t, cmd))
		l.waitQueue(t, "fifo", i+1)
	}
	if r := execute(t, lockctl(l.URL, "run", "-n", "fifo", "--", "true")); r.code != exitBusy || !strings.Contains(r.stderr, "3 in the queue") {
		t.Errorf("jumping the queue: exit %d, stderr %s", r.code, r.stderr)
	}
	if err := holder.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, w := range waiters {
		if r := w.wait(t); r.code != 0 {
			t.Errorf("waiter: exit %d: %s", r.code, r.stderr)
		}
	}
	if b, err := os.ReadFile(log); err != nil || string(b) != "first\nsecond\nthird\n" {
		t.Errorf("ran in the order %q (%v), want first, second, third", b, err)
	}
}

func TestLockDelay(t *testing.T) {
	l := startLockd(t)
	// A lease nobody renews, with a delay: its holder "died".
	r := execute(t, lockctl(l.URL, "acquire", "--ttl", "300ms", "--lock-delay", "3s", "--format", "{{.Kind}} {{.Mode}}", "delayed"))
	if got := strings.TrimSpace(r.stdout); r.code != 0 || got != "lock exclusive" {
		t.Fatalf("acquire: exit %d, %q, %s", r.code, got, r.stderr)
	}
	time.Sleep(400 * time.Millisecond)
	r = execute(t, lockctl(l.URL, "run", "-n", "delayed", "--", "true"))
	if r.code != exitBusy || !strings.Contains(r.stderr, "lock-delay") {
		t.Errorf("run during the delay: exit %d, stderr %s", r.code, r.stderr)
	}
	r = execute(t, lockctl(l.URL, "get", "delayed"))
	var got struct {
		Held       bool      `json:"held"`
		DelayUntil time.Time `json:"delay_until"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Held || time.Until(got.DelayUntil) <= 0 {
		t.Errorf("get during the delay: %q (%v), want free with a delay_until ahead", r.stdout, err)
	}
	r = execute(t, lockctl(l.URL, "run", "--wait", "5s", "delayed", "--", "true"))
	if r.code != 0 || r.took < time.Until(got.DelayUntil)-100*time.Millisecond {
		t.Errorf("run waiting out the delay: exit %d after %v: %s", r.code, r.took, r.stderr)
	}

	// A run's lease is released at the end: no delay follows.
	if r := execute(t, lockctl(l.URL, "run", "--lock-delay", "10s", "released", "--", "true")); r.code != 0 {
		t.Fatalf("run --lock-delay: exit %d: %s", r.code, r.stderr)
	}
	if r := execute(t, lockctl(l.URL, "run", "-n", "released", "--", "true")); r.code != 0 {
		t.Errorf("run after a released lease with a delay: exit %d: %s", r.code, r.stderr)
	}
}

func TestScriptingSemaphore(t *testing.T) {
	l := startLockd(t)

	r := execute(t, lockctl(l.URL, "acquire", "--limit", "2", "--owner", "s1", "--ttl", "1m", "sem"))
	var lease struct {
		Name, Token, Owner, Kind string
		Fence                    int64
		Limit                    int
	}
	if err := json.Unmarshal([]byte(r.stdout), &lease); r.code != 0 || err != nil {
		t.Fatalf("acquire: exit %d, %q (%v): %s", r.code, r.stdout, err, r.stderr)
	}
	if lease.Kind != "semaphore" || lease.Limit != 2 || lease.Owner != "s1" || lease.Fence < 1 {
		t.Errorf("lease %+v", lease)
	}

	r = execute(t, lockctl(l.URL, "get", "sem"))
	var info struct {
		Held    bool   `json:"held"`
		Kind    string `json:"kind"`
		Limit   int    `json:"limit"`
		Fence   int64  `json:"fence"`
		Holders []struct {
			Owner string `json:"owner"`
			Fence int64  `json:"fence"`
			TTLMS int64  `json:"ttl_ms"`
		} `json:"holders"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &info); r.code != 0 || err != nil {
		t.Fatalf("get: exit %d, %q (%v): %s", r.code, r.stdout, err, r.stderr)
	}
	if !info.Held || info.Kind != "semaphore" || info.Limit != 2 || info.Fence != lease.Fence || len(info.Holders) != 1 || info.Holders[0].Owner != "s1" || info.Holders[0].TTLMS <= 0 {
		t.Errorf("get %s", r.stdout)
	}

	r = execute(t, lockctl(l.URL, "extend", "--format", "{{.Kind}} {{.Fence}}", "sem", lease.Token))
	if got := strings.TrimSpace(r.stdout); r.code != 0 || got != "semaphore "+strconv.FormatInt(lease.Fence, 10) {
		t.Errorf("extend: exit %d, %q, %s", r.code, got, r.stderr)
	}
	r = execute(t, lockctl(l.URL, "ls", "se"))
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 2 ||
		!strings.Contains(lines[0], "HOLDERS") || !strings.HasPrefix(lines[1], "sem ") || !strings.Contains(lines[1], "1 of 2") {
		t.Errorf("ls: exit %d:\n%s", r.code, r.stdout)
	}
	if r := execute(t, lockctl(l.URL, "release", "sem", lease.Token)); r.code != 0 {
		t.Errorf("release: exit %d: %s", r.code, r.stderr)
	}
	if r := execute(t, lockctl(l.URL, "release", "sem", lease.Token)); r.code != exitBusy || !strings.Contains(r.stderr, "not_holder") {
		t.Errorf("second release: exit %d, want 1: %s", r.code, r.stderr)
	}
}
