package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// TestREADMEv1WalkThrough runs the README's /v1 curl commands, as written,
// with real curl against two lockd replicas (ports 8081 and 8082 rewritten
// to the test's), and checks the answers the README describes.
func TestREADMEv1WalkThrough(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("curl is needed to replay the README; install it with: apt-get install -y curl")
		}
		t.Skip("SKIPPED: no curl to replay the README with")
	}
	section := readmeSection(t, "## The lock service: /v1")
	cmds := regexp.MustCompile("(?m)^curl .*$").FindAllString(section, -1)
	if len(cmds) != 6 {
		t.Fatalf("the /v1 walk-through has %d curl commands, want the 6 this test knows:\n%s", len(cmds), strings.Join(cmds, "\n"))
	}
	examples := regexp.MustCompile("(?m)^\\{.*\\}$").FindAllString(section, -1)

	_, _, env := dotEnvRedis(t)
	web1, web2 := startReady(t, env), startReady(t, env)
	ports := strings.NewReplacer("localhost:8081", strings.TrimPrefix(web1.url, "http://"),
		"localhost:8082", strings.TrimPrefix(web2.url, "http://"))
	var token string
	run := func(i int) string {
		t.Helper()
		line := strings.ReplaceAll(cmds[i], "<token from step 1>", token)
		args := shellWords(t, ports.Replace(strings.TrimPrefix(line, "curl ")))
		out, err := exec.Command(curl, append([]string{"--max-time", "30"}, args...)...).Output()
		if err != nil {
			t.Errorf("%s: %v", cmds[i], err)
		}
		return string(out)
	}

	// 1. alice's lease, with the README example's fields.
	out := run(0)
	var lease struct {
		Token string
		Fence int64
		Owner string
	}
	if err := json.Unmarshal([]byte(out), &lease); err != nil || lease.Fence < 1 || lease.Owner != "alice" || lease.Token == "" {
		t.Fatalf("step 1: %s (%v)", out, err)
	}
	token = lease.Token
	sameKeys(t, examples[0], out)

	// 2. The refusal on web-2, with Retry-After and the holder.
	out = run(1)
	if !strings.HasPrefix(out, "HTTP/1.1 409 Conflict") || !regexp.MustCompile(`(?mi)^Retry-After: \d+\r?$`).MatchString(out) ||
		!strings.Contains(out, fmt.Sprintf(`"holder":{"owner":"alice","fence":%d,`, lease.Fence)) {
		t.Fatalf("step 2: %s", out)
	}
	sameKeys(t, examples[1], out[strings.LastIndex(out, "\n{")+1:])

	// 3 and 4. bob waits on web-2; alice's release on web-1 lets him in.
	waited := make(chan string, 1)
	go func() { waited <- run(2) }()
	time.Sleep(300 * time.Millisecond) // let bob's request start waiting
	if out := run(3); !strings.HasPrefix(out, "HTTP/1.1 204 No Content") {
		t.Fatalf("step 4: %s", out)
	}
	select {
	case out = <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("bob was not let in after the release")
	}
	var bob struct{ Fence int64 }
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &bob); err != nil || bob.Fence <= lease.Fence ||
		!strings.Contains(out, fmt.Sprintf(`"fence":%d,"owner":"bob"`, bob.Fence)) {
		t.Fatalf("step 3: %s", out)
	}

	// 5. Inspect and list, as the README shows them.
	for i, ex := range []int{2, 3} {
		out := strings.TrimSpace(run(4 + i))
		if !strings.Contains(out, fmt.Sprintf(`"owner":"bob","fence":%d`, bob.Fence)) || strings.Contains(out, "token") {
			t.Errorf("step 5: %s", out)
		}
		sameKeys(t, examples[ex], out)
	}
}

// readmeSection returns the README from heading to the next "## ".
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	root, err := redistest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, heading+"\n")
	if i < 0 {
		t.Fatalf("README has no %q", heading)
	}
	s = s[i+len(heading):]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

// shellWords splits a command line as a POSIX shell would for the simple
// forms the README uses: bare words and single-quoted strings.
func shellWords(t *testing.T, s string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			quoted, inWord = !quoted, true
		case r == ' ' && !quoted:
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
			}
			inWord = false
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unbalanced quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// sameKeys checks that the README's example JSON has the same fields, at
// every level, as the real answer.
func sameKeys(t *testing.T, example, real string) {
	t.Helper()
	var ex, got any
	if err := json.Unmarshal([]byte(example), &ex); err != nil {
		t.Fatalf("README example %s: %v", example, err)
	}
	if err := json.Unmarshal([]byte(real), &got); err != nil {
		t.Fatalf("answer %s: %v", real, err)
	}
	if a, b := keyPaths(ex, ""), keyPaths(got, ""); !slices.Equal(a, b) {
		t.Errorf("README example has fields %v, the real answer %v", a, b)
	}
}

func keyPaths(v any, at string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			out = append(out, at+k)
			out = append(out, keyPaths(e, at+k+".")...)
		}
	case []any:
		for _, e := range v {
			out = append(out, keyPaths(e, at+"[].")...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
