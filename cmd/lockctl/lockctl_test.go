package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"run"},
		{"run", "name"},
		{"run", "name", "--"},
		{"run", "--ttl", "soon", "name", "--", "true"},
		{"run", "-n", "--wait", "1s", "name", "--", "true"},
		{"run", "--wait", "-1s", "name", "--", "true"},
		{"run", "-E", "300", "name", "--", "true"},
		{"run", "--no-such-flag", "name", "--", "true"},
		{"acquire"},
		{"acquire", "--format", "{{.Token", "name"},
		{"release", "name"}, // no token, no LOCK_TOKEN
		{"get", "a", "b"},
		{"run", "--server", "localhost:8081", "name", "--", "true"},
	} {
		r := execute(t, lockctl("http://127.0.0.1:1", args...))
		if r.code != exitUsage {
			t.Errorf("lockctl %q: exit %d, want %d; stderr %s", args, r.code, exitUsage, r.stderr)
		}
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	r := execute(t, lockctl("", "--help"))
	if r.code != 0 {
		t.Fatalf("exit %d", r.code)
	}
	for _, want := range []string{"Exit codes:", "64 ", "69 ", "70 ", "128+N", "-E CODE", "LOCK_FENCE"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	if r := execute(t, lockctl("", "run", "--help")); r.code != 0 || !strings.Contains(r.stderr, "kill-grace") {
		t.Errorf("run --help: exit %d, %s", r.code, r.stderr)
	}
}

func TestUnreachable(t *testing.T) {
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	for _, args := range [][]string{
		{"run", "name", "--", "true"},
		{"acquire", "name"},
		{"get", "name"},
		{"ls"},
	} {
		r := execute(t, lockctl(url, args...))
		if r.code != exitUnavailable || !strings.Contains(r.stderr, "unavailable") {
			t.Errorf("lockctl %q: exit %d, want %d; stderr %s", args, r.code, exitUnavailable, r.stderr)
		}
	}
	// --server wins over LOCKD_URL.
	if r := execute(t, lockctl("http://127.0.0.1:1", "get", "--server", url, "name")); r.code != exitUnavailable || !strings.Contains(r.stderr, url) {
		t.Errorf("--server: exit %d, stderr %s", r.code, r.stderr)
	}
}

func TestRunPassesExitStatus(t *testing.T) {
	l := startLockd(t)
	for _, tc := range []struct {
		argv []string
		want int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
		{[]string{"no-such-command-here"}, exitNotFound},
	} {
		r := execute(t, lockctl(l.URL, append([]string{"run", "status", "--"}, tc.argv...)...))
		if r.code != tc.want {
			t.Errorf("%q: exit %d, want %d; stderr %s", tc.argv, r.code, tc.want, r.stderr)
		}
		if l.held(t, "status") {
			t.Errorf("%q: lock still held after lockctl exited", tc.argv)
		}
	}
}

func TestRunGivesTheCommandItsLock(t *testing.T) {
	l := startLockd(t)
	r := execute(t, lockctl(l.URL, "run", "--owner", "nightly cron", "env-job", "--",
		"sh", "-c", `echo "$LOCK_NAME|$LOCK_FENCE|$LOCK_OWNER"`))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	parts := strings.SplitN(strings.TrimSpace(r.stdout), "|", 3)
	var first int64
	if len(parts) == 3 {
		first, _ = strconv.ParseInt(parts[1], 10, 64)
	}
	if len(parts) != 3 || parts[0] != "env-job" || first < 1 || parts[2] != "nightly cron" {
		t.Errorf("child saw %q, want env-job|<fence>|nightly cron", r.stdout)
	}
	// The next holder's fence is higher.
	r = execute(t, lockctl(l.URL, "run", "env-job", "--", "sh", "-c", `echo "$LOCK_FENCE"`))
	if got, err := strconv.ParseInt(strings.TrimSpace(r.stdout), 10, 64); err != nil || got <= first {
		t.Errorf("second run's fence %q, want above %d", r.stdout, first)
	}
}

func TestRunWhenBusy(t *testing.T) {
	l := startLockd(t)
	l.hold(t, "busy", 30*time.Second)
	for _, tc := range []struct {
		flags    []string
		want     int
		min, max time.Duration
	}{
		{[]string{"-n"}, 1, 0, 2 * time.Second},
		{[]string{"-n", "-E", "75"}, 75, 0, 2 * time.Second},
		{[]string{"--wait", "500ms"}, 1, 500 * time.Millisecond, 3 * time.Second},
	} {
		args := append(append([]string{"run"}, tc.flags...), "busy", "--", "sh", "-c", "echo ran")
		r := execute(t, lockctl(l.URL, args...))
		if r.code != tc.want || r.stdout != "" || !strings.Contains(r.stderr, `held by "test"`) {
			t.Errorf("%q: exit %d (want %d), stdout %q, stderr %s", tc.flags, r.code, tc.want, r.stdout, r.stderr)
		}
		if r.took < tc.min || r.took > tc.max {
			t.Errorf("%q: took %v, want %v to %v", tc.flags, r.took, tc.min, tc.max)
		}
	}
}

// TestRunNeverOverlaps runs two lockctl on one name; their commands append
// start and end times to one file, which must show one after the other.
func TestRunNeverOverlaps(t *testing.T) {
	l := startLockd(t)
	script := `echo "start $(date +%s%N)" >> "$LOG"; sleep 0.5; echo "end $(date +%s%N)" >> "$LOG"`
	b := runTogether(t, 2, script, l.URL, "run", "--ttl", "300ms", "--wait", "20s", "shared")
	lines := strings.Fields(strings.ReplaceAll(string(b), "\n", " "))
	if len(lines) != 8 {
		t.Fatalf("log %q, want two start/end pairs", b)
	}
	var last int64
	for i := 0; i < len(lines); i += 2 {
		kind, ns := lines[i], lines[i+1]
		if want := []string{"start", "end"}[i/2%2]; kind != want {
			t.Fatalf("log %q: entry %d is %s, want %s (the commands overlapped)", b, i/2, kind, want)
		}
		v, err := strconv.ParseInt(ns, 10, 64)
		if err != nil || v < last {
			t.Fatalf("log %q: times not in order", b)
		}
		last = v
	}
}

func TestRunLockLost(t *testing.T) {
	l := startLockd(t)
	dir := t.TempDir()
	// The command reports SIGTERM and exits; lockctl must still exit 70.
	script := `trap 'echo TERM > "$DIR/term"; exit 0' TERM; echo "$LOCK_FENCE" > "$DIR/ready"; while :; do sleep 0.05; done`
	cmd := lockctl(l.URL, "run", "--ttl", "600ms", "lost", "--", "sh", "-c", script)
	cmd.Env = append(cmd.Env, "DIR="+dir)
	s := startCmd(t, cmd)
	if fence, err := strconv.ParseInt(strings.TrimSpace(waitFile(t, filepath.Join(dir, "ready"))), 10, 64); err != nil || fence < 1 {
		t.Errorf("LOCK_FENCE %d (%v), want a fence", fence, err)
	}
	time.Sleep(700 * time.Millisecond) // past the first TTL: renewals work
	if err := l.rdb.Del(context.Background(), "lock:lost").Err(); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	r := s.wait(t)
	if r.code != exitLost {
		t.Errorf("exit %d, want %d; stderr %s", r.code, exitLost, r.stderr)
	}
	if took := time.Since(deleted); took > 2*time.Second {
		t.Errorf("took %v after the deletion", took)
	}
	if !strings.Contains(r.stderr, "lost the lock lost") || !strings.Contains(r.stderr, "SIGTERM") {
		t.Errorf("stderr %q does not explain the loss", r.stderr)
	}
	if got := waitFile(t, filepath.Join(dir, "term")); strings.TrimSpace(got) != "TERM" {
		t.Errorf("command saw %q, want TERM", got)
	}
}

func TestRunKillsAfterGrace(t *testing.T) {
	l := startLockd(t)
	dir := t.TempDir()
	script := `trap '' TERM; echo ready > "$DIR/ready"; while :; do sleep 0.05; done`
	cmd := lockctl(l.URL, "run", "--ttl", "600ms", "--kill-grace", "300ms", "stubborn", "--", "sh", "-c", script)
	cmd.Env = append(cmd.Env, "DIR="+dir)
	s := startCmd(t, cmd)
	waitFile(t, filepath.Join(dir, "ready"))
	if err := l.rdb.Del(context.Background(), "lock:stubborn").Err(); err != nil {
		t.Fatal(err)
	}
	r := s.wait(t)
	if r.code != exitLost || !strings.Contains(r.stderr, "SIGKILL") {
		t.Errorf("exit %d, want %d; stderr %s", r.code, exitLost, r.stderr)
	}
}

func TestRunMaxHold(t *testing.T) {
	l := startLockd(t)
	r := execute(t, lockctl(l.URL, "run", "--ttl", "300ms", "--max-hold", "700ms", "bounded", "--", "sleep", "10"))
	if r.code != exitLost || !strings.Contains(r.stderr, "--max-hold") {
		t.Errorf("exit %d, want %d; stderr %s", r.code, exitLost, r.stderr)
	}
	if r.took < 700*time.Millisecond || r.took > 3*time.Second {
		t.Errorf("took %v, want a little over 700ms", r.took)
	}
	if l.held(t, "bounded") {
		t.Error("still held after lockctl exited")
	}
}

func TestRunForwardsSignals(t *testing.T) {
	l := startLockd(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			script := `trap 'echo got > "$DIR/got"; exit 42' TERM INT; echo ready > "$DIR/ready"; while :; do sleep 0.05; done`
			cmd := lockctl(l.URL, "run", "signals", "--", "sh", "-c", script)
			cmd.Env = append(cmd.Env, "DIR="+dir)
			s := startCmd(t, cmd)
			waitFile(t, filepath.Join(dir, "ready"))
			if err := s.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			r := s.wait(t)
			if r.code != 42 {
				t.Errorf("exit %d, want the command's 42; stderr %s", r.code, r.stderr)
			}
			waitFile(t, filepath.Join(dir, "got"))
			if l.held(t, "signals") {
				t.Error("still held after lockctl exited")
			}
		})
	}
}

func TestSignalWhileWaiting(t *testing.T) {
	l := startLockd(t)
	l.hold(t, "waiting", 30*time.Second)
	s := startCmd(t, lockctl(l.URL, "run", "waiting", "--", "true"))
	time.Sleep(300 * time.Millisecond) // in its wait
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := s.wait(t); r.code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d, want %d; stderr %s", r.code, 128+int(syscall.SIGTERM), r.stderr)
	}
}

func TestScripting(t *testing.T) {
	l := startLockd(t)

	r := execute(t, lockctl(l.URL, "acquire", "--ttl", "1m", "--owner", "deploy", "job"))
	if r.code != 0 {
		t.Fatalf("acquire: exit %d: %s", r.code, r.stderr)
	}
	var lease struct {
		Name, Token, Owner string
		Fence              int64
		TTLMS              int64     `json:"ttl_ms"`
		ExpiresAt          time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &lease); err != nil {
		t.Fatalf("acquire printed %q: %v", r.stdout, err)
	}
	if lease.Name != "job" || lease.Owner != "deploy" || lease.Fence < 1 || len(lease.Token) < 22 || lease.TTLMS <= 0 || lease.TTLMS > 60000 {
		t.Errorf("lease %+v", lease)
	}

	if r := execute(t, lockctl(l.URL, "acquire", "-n", "job")); r.code != 1 {
		t.Errorf("acquire -n of a held lock: exit %d, want 1", r.code)
	}
	r = execute(t, lockctl(l.URL, "get", "--format", "{{.Held}} {{.Owner}} {{.Fence}}", "job"))
	if got := strings.TrimSpace(r.stdout); r.code != 0 || got != fmt.Sprintf("true deploy %d", lease.Fence) {
		t.Errorf("get: exit %d, %q", r.code, got)
	}
	r = execute(t, lockctl(l.URL, "extend", "--ttl", "2m", "--format", "{{.Fence}} {{gt .TTLMS 60000}}", "job", lease.Token))
	if got := strings.TrimSpace(r.stdout); r.code != 0 || got != fmt.Sprintf("%d true", lease.Fence) {
		t.Errorf("extend: exit %d, %q, %s", r.code, got, r.stderr)
	}
	r = execute(t, lockctl(l.URL, "ls", "jo"))
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); r.code != 0 || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "job ") || !strings.Contains(lines[1], "deploy") {
		t.Errorf("ls: exit %d:\n%s", r.code, r.stdout)
	}

	release := lockctl(l.URL, "release", "job")
	release.Env = append(release.Env, "LOCK_TOKEN="+lease.Token)
	if r := execute(t, release); r.code != 0 {
		t.Errorf("release: exit %d: %s", r.code, r.stderr)
	}
	if r := execute(t, lockctl(l.URL, "release", "job", lease.Token)); r.code != 1 || !strings.Contains(r.stderr, "not_holder") {
		t.Errorf("second release: exit %d, want 1: %s", r.code, r.stderr)
	}
	r = execute(t, lockctl(l.URL, "acquire", "-n", "--format", "{{.Token}}", "job"))
	if tok := strings.TrimSpace(r.stdout); r.code != 0 || len(tok) < 22 || strings.ContainsAny(tok, "{} ") {
		t.Errorf("acquire --format: exit %d, %q", r.code, r.stdout)
	}
}

func TestUnauthenticated(t *testing.T) {
	const token = "0123456789abcdef"
	l := startLockd(t, "API_TOKENS="+token)
	if r := execute(t, lockctl(l.URL, "get", "x")); r.code != exitNoPerm || !strings.Contains(r.stderr, "LOCKD_TOKEN") {
		t.Errorf("without a token: exit %d, want %d: %s", r.code, exitNoPerm, r.stderr)
	}
	cmd := lockctl(l.URL, "run", "-n", "x", "--", "true")
	cmd.Env = append(cmd.Env, "LOCKD_TOKEN="+token)
	if r := execute(t, cmd); r.code != 0 {
		t.Errorf("with the token: exit %d: %s", r.code, r.stderr)
	}
	if _, err := l.c.Acquire(context.Background(), "x", client.AcquireOptions{}); err != nil {
		t.Errorf("the lock was not released: %v", err)
	}
}

// runTogether starts n copies of lockctl with args, each running script
// under sh with $LOG naming one file they share, waits for them all, fails
// the test unless every one exits 0, and returns the file.
func runTogether(t *testing.T, n int, script, url string, args ...string) []byte {
	t.Helper()
	log := filepath.Join(t.TempDir(), "log")
	var wg sync.WaitGroup
	results := make([]result, n)
	args = slices.Concat(args, []string{"--", "sh", "-c", script})
	for i := range results {
		cmd := lockctl(url, args...)
		cmd.Env = append(cmd.Env, "LOG="+log)
		s := startCmd(t, cmd)
		wg.Go(func() { results[i] = s.wait(t) })
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("run %d: exit %d: %s", i, r.code, r.stderr)
		}
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFlagsAfterTheName: flags may follow NAME (and a TOKEN), as people
// type them; what is not one of lockctl's flags stays an argument: a
// token that starts with "-", and the command's own flags.
func TestFlagsAfterTheName(t *testing.T) {
	l := startLockd(t)
	r := execute(t, lockctl(l.URL, "acquire", "late", "--ttl", "1m", "--owner", "typist", "--format", "{{.Owner}} {{gt .TTLMS 50000}} {{.Token}}"))
	fields := strings.Fields(r.stdout)
	if r.code != 0 || len(fields) != 3 || fields[0] != "typist" || fields[1] != "true" {
		t.Fatalf("acquire NAME --flags: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	if r := execute(t, lockctl(l.URL, "release", "late", "-notatoken")); r.code != 1 || !strings.Contains(r.stderr, "not_holder") {
		t.Errorf("release NAME -TOKEN: exit %d, want 1 and not_holder: %s", r.code, r.stderr)
	}
	if r := execute(t, lockctl(l.URL, "extend", "late", fields[2], "--ttl", "2m", "--format", "{{gt .TTLMS 60000}}")); r.code != 0 || strings.TrimSpace(r.stdout) != "true" {
		t.Errorf("extend NAME TOKEN --flags: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	r = execute(t, lockctl(l.URL, "run", "job", "--ttl", "2s", "--", "sh", "-c", "echo $LOCK_NAME"))
	if r.code != 0 || strings.TrimSpace(r.stdout) != "job" {
		t.Errorf("run NAME --flags -- COMMAND: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	if r := execute(t, lockctl(l.URL, "run", "job", "sh", "-c", "exit 3")); r.code != 3 {
		t.Errorf("run NAME COMMAND -flag: exit %d, want 3: %s", r.code, r.stderr)
	}
}
