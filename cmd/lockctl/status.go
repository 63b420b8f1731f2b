package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

// statusEvery is how often the waiting line is refreshed.
const statusEvery = 500 * time.Millisecond

// isTerminal says whether w is a terminal, where a line updated in place
// makes sense. A pipe, a file or /dev/null gets nothing of the kind.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// showWaiting keeps one line on w saying who holds name, for how long and
// where owner's request is in its queue, updated in place from get, until
// ctx ends; then it clears the line.
func showWaiting(ctx context.Context, w io.Writer, name, owner string, get func(context.Context) (client.LockInfo, error)) {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(w, "\r\033[K")
			return
		case <-t.C:
			info, err := get(ctx)
			if err != nil || ctx.Err() != nil {
				continue
			}
			fmt.Fprint(w, "\r\033[K"+waitingLine(name, owner, info))
		}
	}
}

// waitingLine is the status line's text for a request by owner.
func waitingLine(name, owner string, info client.LockInfo) string {
	var what string
	switch {
	case !info.Held && !info.DelayUntil.IsZero():
		what = fmt.Sprintf("in a lock-delay, %s left", max(time.Until(info.DelayUntil), 0).Round(100*time.Millisecond))
	case !info.Held:
		what = "just released, trying"
	default:
		what = fmt.Sprintf("%s (fence %d), %s left", heldBy(info.Owner, info.Holders, info.Mode, info.Limit), info.Fence, info.TTL.Round(100*time.Millisecond))
		if !info.DelayUntil.IsZero() {
			// A holder expired with a lock-delay beside the others.
			what += fmt.Sprintf(", and a lock-delay for %s", max(time.Until(info.DelayUntil), 0).Round(100*time.Millisecond))
		}
	}
	return fmt.Sprintf("lockctl: waiting for %s: %s%s", name, what, placeText(owner, info))
}

// placeText says where owner's request is in the name's queue. The
// service shows waiters by owner, never by token, so the place is known
// only when exactly one waiter has this owner (lockctl's default owner
// names the process); otherwise it says how many wait.
func placeText(owner string, info client.LockInfo) string {
	place := 0
	for i, w := range info.Waiters {
		if w.Owner != owner {
			continue
		}
		if place != 0 {
			return queueText(info.Queue)
		}
		place = i + 1
	}
	if place == 0 {
		return queueText(info.Queue)
	}
	return fmt.Sprintf("; number %d of %d in the queue", place, len(info.Waiters))
}
