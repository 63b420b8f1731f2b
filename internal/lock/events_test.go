package lock

import (
	"slices"
	"testing"
)

func TestCommandLogFoldsRetries(t *testing.T) {
	l := &CommandLog{}
	set := profilerLine([]any{"set", "lock:a", "secret-token", "ex", 30, "nx"})
	release := profilerLine([]any{"evalsha", "e950836ed1e694540c503ef9972b8de518044d3b", 1, "lock:a", "secret-token"})
	extend := profilerLine([]any{"evalsha", "d75bb8b5bd13532ddedd17762e772346e39b321e", 1, "lock:a", "secret-token", 30000})
	for range 3 {
		l.add(set)
		l.add(release)
	}
	l.add(set)
	l.add(extend)
	l.add(extend)
	l.add(release)
	want := []string{
		`"set" "lock:a" "…" "ex" "30" "nx" ×3`,
		`"evalsha" "e950836ed1e694540c503ef9972b8de518044d3b" "1" "lock:a" "…" ×3`,
		`"set" "lock:a" "…" "ex" "30" "nx"`,
		`"evalsha" "d75bb8b5bd13532ddedd17762e772346e39b321e" "1" "lock:a" "…" "30000" ×2`,
		`"evalsha" "e950836ed1e694540c503ef9972b8de518044d3b" "1" "lock:a" "…"`,
	}
	if got := l.Lines(); !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}
