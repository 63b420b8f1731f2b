package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestREADMEKindsWalkThrough runs the README's commands for semaphores,
// shared locks, fair waiting and lock-delay, as written, in bash with real
// curl against two lockd replicas (ports 8081 and 8082 rewritten to the
// test's), and checks the answers the README describes.
func TestREADMEKindsWalkThrough(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed to replay the README; install it with: apt-get install -y %s", tool, tool)
			}
			t.Skipf("SKIPPED: no %s to replay the README with", tool)
		}
	}
	section := readmeSection(t, "## Semaphores, shared locks, fair waiting and lock-delay")
	cmds := regexp.MustCompile("(?m)^(curl|sleep) .*$").FindAllString(section, -1)
	if len(cmds) != 13 {
		t.Fatalf("the walk-through has %d commands, want the 13 this test knows:\n%s", len(cmds), strings.Join(cmds, "\n"))
	}
	examples := regexp.MustCompile("(?m)^\\{.*\\}$").FindAllString(section, -1)
	if len(examples) != 4 {
		t.Fatalf("the walk-through has %d example answers, want 4", len(examples))
	}

	_, _, env := dotEnvRedis(t)
	web1, web2 := startReady(t, env), startReady(t, env)
	ports := strings.NewReplacer("localhost:8081", strings.TrimPrefix(web1.url, "http://"),
		"localhost:8082", strings.TrimPrefix(web2.url, "http://"))
	// run runs command i in bash and returns what it printed, or why it
	// failed. Of a line "A & B", A runs in the background, in a goroutine
	// that does not touch t, and answers on the channel, while B runs.
	run := func(i int) <-chan string {
		out := make(chan string, 1)
		do := func(line string) {
			b, err := exec.Command("bash", "-c", ports.Replace(line)).Output()
			if err != nil {
				b = append(b, "\n"+line+": "+err.Error()...)
			}
			out <- string(b)
		}
		background, then, ok := strings.Cut(cmds[i], " & ")
		if !ok {
			do(cmds[i])
			return out
		}
		go do(background)
		if err := exec.Command("bash", "-c", then).Run(); err != nil {
			t.Errorf("%s: %v", then, err)
		}
		return out
	}
	type lease struct {
		Kind, Owner, Mode string
		Fence, Limit      int64
		WaitedMS          int64 `json:"waited_ms"`
	}
	leaseOf := func(step, out string) lease {
		t.Helper()
		var l lease
		if err := json.Unmarshal([]byte(out), &l); err != nil || l.Fence < 1 {
			t.Fatalf("%s: %s (%v)", step, out, err)
		}
		return l
	}
	type holder struct {
		Owner, Mode string
		Fence       int64
	}
	// answer is an inspect answer or an error's body.
	type answer struct {
		Error      struct{ Code string }
		Kind, Mode string
		Limit      int
		Holders    []holder
		Queue      int
		DelayUntil string `json:"delay_until"`
	}
	var info answer
	decode := func(step, out string) {
		t.Helper()
		info = answer{}
		if err := json.Unmarshal([]byte(out[max(strings.Index(out, "{"), 0):]), &info); err != nil {
			t.Fatalf("%s: %s (%v)", step, out, err)
		}
	}

	// 1. Two permits of a semaphore of limit 2, and a third refused.
	for i, owner := range []string{"worker-1", "worker-2"} {
		if l := leaseOf("semaphore", <-run(i)); l.Kind != "semaphore" || l.Limit != 2 || l.Owner != owner {
			t.Errorf("semaphore: permit %+v, want %s's of limit 2", l, owner)
		}
	}
	out := <-run(2)
	decode("semaphore", out)
	if info.Error.Code != "locked" || info.Limit != 2 || len(info.Holders) != 2 ||
		info.Holders[0].Owner != "worker-1" || info.Holders[1].Owner != "worker-2" {
		t.Errorf("semaphore: the third worker got %s", out)
	}
	sameKeys(t, examples[0], out)

	// 2. Two readers share a lock.
	for i, owner := range []string{"reader-1", "reader-2"} {
		if l := leaseOf("shared", <-run(3+i)); l.Kind != "lock" || l.Mode != "shared" || l.Owner != owner {
			t.Errorf("shared: lease %+v, want %s's in shared mode", l, owner)
		}
	}
	out = <-run(5)
	decode("shared", out)
	if info.Mode != "shared" || len(info.Holders) != 2 || info.Holders[0].Mode != "shared" || info.Holders[1].Mode != "shared" {
		t.Errorf("shared: inspect shows %s", out)
	}
	sameKeys(t, examples[1], out)

	// 3. bob, then carol, queue behind alice and get the lock in turn.
	alice := leaseOf("fair", <-run(6))
	bob, carol := run(7), run(8)
	out = <-run(9)
	decode("fair", out)
	if len(info.Holders) != 1 || info.Holders[0].Owner != "alice" || info.Queue != 2 {
		t.Errorf("fair: inspect shows %s, want alice holding and 2 in the queue", out)
	}
	sameKeys(t, examples[2], out)
	var got []lease
	for _, ch := range []<-chan string{bob, carol} {
		select {
		case out := <-ch:
			got = append(got, leaseOf("fair", out))
		case <-time.After(20 * time.Second):
			t.Fatal("fair: a waiter did not get the lock in time")
		}
	}
	if got[0].Owner != "bob" || got[1].Owner != "carol" || got[0].Fence <= alice.Fence || got[1].Fence <= got[0].Fence ||
		got[0].WaitedMS < 5000 || got[1].WaitedMS < got[0].WaitedMS {
		t.Errorf("fair: bob got %+v, carol %+v, after alice's %+v", got[0], got[1], alice)
	}

	// 4. A lease with a lock-delay expires; the name stays refused.
	if l := leaseOf("lock-delay", <-run(10)); l.Owner != "cron" {
		t.Errorf("lock-delay: lease %+v", l)
	}
	<-run(11)
	out = <-run(12)
	// The README shows about 9 s left; a busy machine takes longer between
	// the commands.
	if !strings.HasPrefix(out, "HTTP/1.1 409 Conflict") || !regexp.MustCompile(`(?mi)^Retry-After: ([1-9]|10)\r?$`).MatchString(out) {
		t.Errorf("lock-delay: %s", out)
	}
	decode("lock-delay", out)
	if until, err := time.Parse(time.RFC3339, info.DelayUntil); info.Error.Code != "lock_delay" || err != nil ||
		time.Until(until) <= 0 || time.Until(until) > 10*time.Second {
		t.Errorf("lock-delay: %s, want the delay's end within 10 s", out)
	}
	sameKeys(t, examples[3], out[strings.LastIndex(out, "\n{")+1:])
}
