package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

func TestWaitingLine(t *testing.T) {
	got := waitingLine("nightly", client.LockInfo{Held: true, Owner: "cron@web-1", Fence: 7, TTL: 12340 * time.Millisecond})
	if want := `lockctl: waiting for nightly: held by "cron@web-1" (fence 7), 12.3s left`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := waitingLine("nightly", client.LockInfo{}); !strings.Contains(got, "just released") {
		t.Errorf("free lock: %q", got)
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
