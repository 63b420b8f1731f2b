package redistest

import (
	"bytes"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Buffer collects what a process or logger writes, for assertions, safe
// to read while it is written to.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// WaitFor waits up to limit until what was written matches re, and returns
// the submatches; it fails t with everything written otherwise.
func (b *Buffer) WaitFor(t testing.TB, re string, limit time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if m := rx.FindStringSubmatch(b.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("output never matched %s within %v:\n%s", re, limit, b.String())
		}
	}
}
