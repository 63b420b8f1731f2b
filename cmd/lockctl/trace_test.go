package main

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-distributed-lock/go-distributed-lock/internal/apitest"
)

// recordingProxy serves lockd's API through an apitest.Recorder and
// returns the proxy's URL.
func recordingProxy(t *testing.T, lockdURL string) (string, *apitest.Recorder) {
	t.Helper()
	u, err := url.Parse(lockdURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	proxy.Transport = tr
	return apitest.RecordFront(t, proxy)
}

func TestTraceContextFromEnvironment(t *testing.T) {
	l := startLockd(t)
	front, rec := recordingProxy(t, l.URL)
	const (
		parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		state  = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
	)
	withTrace := func(env []string, traceparent string) []string {
		return append(env, "TRACEPARENT="+traceparent, "TRACESTATE="+state)
	}

	// run: its acquire and release carry the caller's trace context, and
	// COMMAND sees the same variables.
	seenBy := filepath.Join(t.TempDir(), "trace")
	cmd := lockctl(front, "run", "traced-run", "--", "sh", "-c", `printf '%s %s' "$TRACEPARENT" "$TRACESTATE" > "$0"`, seenBy)
	cmd.Env = withTrace(cmd.Env, parent)
	if r := execute(t, cmd); r.code != 0 {
		t.Fatalf("run: exit %d, stderr %s", r.code, r.stderr)
	}
	if b, err := os.ReadFile(seenBy); err != nil || string(b) != parent+" "+state {
		t.Errorf("COMMAND saw %q (%v), want %q", b, err, parent+" "+state)
	}
	checkTraced(t, "run", rec.Take(), []string{"/v1/locks/traced-run/acquire", "/v1/locks/traced-run/release"}, parent, state)

	// The one-call commands do the same.
	cmd = lockctl(front, "acquire", "--format", "{{.Token}}", "traced-script")
	cmd.Env = withTrace(cmd.Env, parent)
	r := execute(t, cmd)
	if r.code != 0 {
		t.Fatalf("acquire: exit %d, stderr %s", r.code, r.stderr)
	}
	cmd = lockctl(front, "release", "traced-script", strings.TrimSpace(r.stdout))
	cmd.Env = withTrace(cmd.Env, parent)
	if r := execute(t, cmd); r.code != 0 {
		t.Fatalf("release: exit %d, stderr %s", r.code, r.stderr)
	}
	checkTraced(t, "acquire and release", rec.Take(), []string{"/v1/locks/traced-script/acquire", "/v1/locks/traced-script/release"}, parent, state)

	// A malformed TRACEPARENT is ignored, not an error, and starts no
	// trace: nothing is sent.
	cmd = lockctl(front, "get", "traced-script")
	cmd.Env = withTrace(cmd.Env, "00-not-a-trace-01")
	if r := execute(t, cmd); r.code != 0 {
		t.Fatalf("get with a malformed TRACEPARENT: exit %d, stderr %s", r.code, r.stderr)
	}
	checkTraced(t, "get with a malformed TRACEPARENT", rec.Take(), []string{"/v1/locks/traced-script"}, "", "")
}

// checkTraced checks that the requests to paths, in order, carried
// traceparent and tracestate.
func checkTraced(t *testing.T, what string, reqs []apitest.Seen, paths []string, traceparent, tracestate string) {
	t.Helper()
	if len(reqs) != len(paths) {
		t.Fatalf("%s: requests %+v, want %d to %v", what, reqs, len(paths), paths)
	}
	for i, req := range reqs {
		if req.Path != paths[i] || req.Traceparent != traceparent || req.Tracestate != tracestate {
			t.Errorf("%s: %s reached lockd with traceparent %q tracestate %q, want %s with %q %q", what, req.Path, req.Traceparent, req.Tracestate, paths[i], traceparent, tracestate)
		}
	}
}
