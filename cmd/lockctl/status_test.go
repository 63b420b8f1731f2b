package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

func TestWaitingLine(t *testing.T) {
	got := waitingLine("nightly", "me", client.LockInfo{Held: true, Owner: "cron@web-1", Fence: 7, TTL: 12340 * time.Millisecond})
	if want := `lockctl: waiting for nightly: held by "cron@web-1" (fence 7), 12.3s left`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := waitingLine("nightly", "me", client.LockInfo{}); !strings.Contains(got, "just released") {
		t.Errorf("free lock: %q", got)
	}
	for _, tc := range []struct {
		info client.LockInfo
		want string
	}{
		{client.LockInfo{Held: true, Owner: "w", Fence: 9, TTL: 2 * time.Second, Mode: client.Exclusive, Queue: 2,
			Holders: []client.Holder{{Owner: "w", Fence: 9, TTL: 2 * time.Second, Mode: client.Exclusive}}},
			`lockctl: waiting for doc: held by "w" (fence 9), 2s left; 2 in the queue`},
		{client.LockInfo{Held: true, Owner: "r2", Fence: 9, TTL: 2 * time.Second, Mode: client.Shared,
			Holders: []client.Holder{{Owner: "r1", Fence: 8}, {Owner: "r2", Fence: 9}, {Owner: "", Fence: 7}}},
			`lockctl: waiting for doc: held shared by "r2" and 2 more (fence 9), 2s left`},
		{client.LockInfo{Held: true, Owner: "r", Fence: 9, TTL: 2 * time.Second, Mode: client.Shared, Queue: 1,
			Holders: []client.Holder{{Owner: "r", Fence: 9}}},
			`lockctl: waiting for doc: held shared by "r" (fence 9), 2s left; 1 in the queue`},
		{client.LockInfo{Held: true, Owner: "b", Fence: 9, TTL: 1500 * time.Millisecond, Kind: client.KindSemaphore, Limit: 3,
			Holders: []client.Holder{{Owner: "a"}, {Owner: "b"}, {Owner: "c"}}},
			`lockctl: waiting for doc: 3 of 3 permits held, the latest by "b" (fence 9), 1.5s left`},
		{client.LockInfo{Held: true, Owner: "w", Fence: 9, TTL: 2 * time.Second, Mode: client.Exclusive, Queue: 3,
			Holders: []client.Holder{{Owner: "w", Fence: 9}}, Waiters: []client.Waiter{{Owner: "a"}, {Owner: "me"}, {Owner: "b"}}},
			`lockctl: waiting for doc: held by "w" (fence 9), 2s left; number 2 of 3 in the queue`},
		// Two waiters with this owner: which one is this request is unknown.
		{client.LockInfo{Held: true, Owner: "w", Fence: 9, TTL: 2 * time.Second, Mode: client.Exclusive, Queue: 2,
			Holders: []client.Holder{{Owner: "w", Fence: 9}}, Waiters: []client.Waiter{{Owner: "me"}, {Owner: "me"}}},
			`lockctl: waiting for doc: held by "w" (fence 9), 2s left; 2 in the queue`},
		{client.LockInfo{DelayUntil: time.Now().Add(1520 * time.Millisecond)},
			`lockctl: waiting for doc: in a lock-delay, 1.5s left`},
		{client.LockInfo{Held: true, Owner: "r", Fence: 9, TTL: time.Second, Mode: client.Shared, DelayUntil: time.Now().Add(2520 * time.Millisecond),
			Holders: []client.Holder{{Owner: "r", Fence: 9}}},
			`lockctl: waiting for doc: held shared by "r" (fence 9), 1s left, and a lock-delay for 2.5s`},
	} {
		if got := waitingLine("doc", "me", tc.info); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestFailSaysWhyAndExits(t *testing.T) {
	api := func(status int, code string) *client.APIError {
		return &client.APIError{Status: status, Code: code, Message: "m"}
	}
	for _, tc := range []struct {
		err  error
		code int
		want string
	}{
		{&client.LockedError{Owner: "test", Fence: 7, TTL: 1500 * time.Millisecond, Holders: []client.Holder{{Owner: "test", Fence: 7}}, Mode: client.Exclusive, API: api(409, "locked")},
			75, `lockctl run: held by "test" (fence 7, 1.5s left)`},
		{&client.LockedError{Owner: "b", Fence: 9, TTL: time.Second, Holders: make([]client.Holder, 2), Limit: 2, Queue: 4, API: api(409, "locked")},
			75, `lockctl run: 2 of 2 permits held, the latest by "b" (fence 9, 1s left); 4 in the queue`},
		{&client.LockDelayError{Until: time.Now().Add(-time.Second), RetryAfter: 2 * time.Second, API: api(409, "lock_delay")},
			75, "lockctl run: in a lock-delay for 2s more"},
		{&client.KindMismatchError{Kind: client.KindSemaphore, API: api(409, "kind_mismatch")},
			75, "held as a semaphore: take a permit with --limit"},
		{&client.KindMismatchError{Kind: client.KindLock, API: api(409, "kind_mismatch")},
			75, "held as a lock, not a semaphore: drop --limit"},
		{&client.LimitMismatchError{Limit: 2, API: api(409, "limit_mismatch")},
			75, "the semaphore's holders use --limit 2"},
		{api(409, "limit_mismatch"), 75, "limit_mismatch"},
		{api(400, "unsupported"), exitUsage, "unsupported"},
		{api(400, "invalid_argument"), exitUsage, "invalid_argument"},
	} {
		var stderr strings.Builder
		e := &env{name: "run", stderr: &stderr}
		if code := e.fail(tc.err, 75); code != tc.code || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, %q; want %d, %q", tc.err, code, stderr.String(), tc.code, tc.want)
		}
	}
}

// A pipe or a file is not a terminal: no line drawn in place there.
func TestStatusOnlyOnATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(t.TempDir() + "/stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, out := range []*os.File{w, f} {
		if isTerminal(out) {
			t.Errorf("%s is taken for a terminal", out.Name())
		}
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !isTerminal(tty) {
			t.Error("/dev/tty is not taken for a terminal")
		}
	}
}
