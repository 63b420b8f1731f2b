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

// showWaiting keeps one line on w saying who holds name and for how long,
// updated in place, until ctx ends; then it clears the line.
func showWaiting(ctx context.Context, w io.Writer, c *client.Client, name string) {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprint(w, "\r\033[K")
			return
		case <-t.C:
			info, err := c.Get(ctx, name)
			if err != nil || ctx.Err() != nil {
				continue
			}
			fmt.Fprint(w, "\r\033[K"+waitingLine(name, info))
		}
	}
}

// waitingLine is the status line's text.
func waitingLine(name string, info client.LockInfo) string {
	if !info.Held {
		return fmt.Sprintf("lockctl: waiting for %s: just released, trying", name)
	}
	who := ownerText(info.Owner)
	return fmt.Sprintf("lockctl: waiting for %s: held by %s (fence %d), %s left",
		name, who, info.Fence, info.TTL.Round(100*time.Millisecond))
}
