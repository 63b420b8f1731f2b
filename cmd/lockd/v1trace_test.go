package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// monitorLine is one MONITOR line: who sent it ("lua" for a script's own
// calls, else the client's address), the command, and its arguments.
var monitorLine = regexp.MustCompile(`^[\d.]+ \[\d+ ([^\]]+)\] "([^"]+)"(.*)$`)

// TestV1RedisTrace: each /v1 operation is one EVALSHA on the wire, and the
// script's own calls are exactly these, with the lock's event written by
// the script itself (no XADD, PUBLISH or read of its own).
func TestV1RedisTrace(t *testing.T) {
	t.Parallel()
	srv, db, env := dotEnvRedis(t)
	mon := srv.Monitor(t)
	web := startReady(t, env)
	ctx := context.Background()
	// One connection for the test's own commands, to tell them apart.
	rdb := srv.Client(t, db).Conn()
	t.Cleanup(func() { _ = rdb.Close() })
	info, err := rdb.ClientInfo(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	mine := info.Addr
	const name = "v1trace"

	var token string
	var fence int64
	marks := 0
	// op sends one request and returns the commands it caused: lockd's own
	// (not a script's) and the script's, as "COMMAND first-key".
	op := func(method, path, body string, wantStatus int) (sent, inScript []string, reply string) {
		t.Helper()
		start := len(mon.Lines())
		r, _ := send(t, method, web.url+path, http.Header{"Content-Type": {"application/json"}}, body)
		if r.status != wantStatus {
			t.Fatalf("%s %s: got %d %s, want %d", method, path, r.status, r.body, wantStatus)
		}
		// Everything the request caused is on the wire before its answer;
		// a marker sent now shows where its commands end.
		marks++
		mark := fmt.Sprintf("v1trace-mark-%d", marks)
		rdb.Echo(ctx, mark)
		lines := mon.WaitFor(t, mark, 5*time.Second)[start:]
		for _, l := range lines {
			m := monitorLine.FindStringSubmatch(l)
			if m == nil || m[1] == mine {
				continue
			}
			args := regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`).FindAllStringSubmatch(m[3], 2)
			c := strings.ToUpper(m[2])
			if len(args) > 0 && c != "EVALSHA" {
				c += " " + args[0][1]
			}
			switch {
			case m[1] == "lua":
				inScript = append(inScript, c)
			case slices.Contains([]string{"HELLO", "AUTH", "SELECT", "SCRIPT", "CLIENT", "INFO"}, strings.Fields(c)[0]) ||
				c == "GET lockd:node":
				// A new connection's set-up, once per connection: it
				// authenticates, loads the scripts and checks that Redis
				// did not restart (its run id against lockd:node) before
				// its first use.
			default:
				sent = append(sent, c)
			}
		}
		return sent, inScript, r.body
	}
	check := func(what string, sent, inScript, wantScript []string) {
		t.Helper()
		if !slices.Equal(sent, []string{"EVALSHA"}) {
			t.Errorf("%s sent %q, want one EVALSHA (one round trip)", what, sent)
		}
		if !slices.Equal(inScript, wantScript) {
			t.Errorf("%s ran %q in its script, want %q", what, inScript, wantScript)
		}
	}

	sent, inScript, body := op("POST", "/v1/locks/"+name+"/acquire", `{"ttl":"30s","owner":"tracer"}`, 200)
	var l struct {
		Token string
		Fence int64
	}
	if err := json.Unmarshal([]byte(body), &l); err != nil || l.Token == "" {
		t.Fatalf("acquire: %s", body)
	}
	token, fence = l.Token, l.Fence
	// The one fence counter in this new Redis is the lock's slot's.
	counters := rdb.Keys(ctx, "lockd:fence:*").Val()
	if len(counters) != 1 {
		t.Fatalf("fence counters %q, want the one of the lock's slot", counters)
	}
	counter := counters[0]
	check("acquire", sent, inScript, []string{
		"GET lock:" + name, "TIME", "GET " + counter, "GET lockfence:" + name, "SET " + counter,
		"SET lock:" + name, "XADD lockd:events",
	})
	// 30000 ms is 7530 in hexadecimal. The grant's time is the fence's
	// (Redis's clock in microseconds) in ms: nothing follows the TTL.
	value := fmt.Sprintf("%x:7530:%s:tracer", fence, token)
	if got := rdb.Get(ctx, "lock:"+name).Val(); got != value {
		t.Errorf("lock value %q, want %q: fence:ttl_ms:token:owner, numbers in hexadecimal", got, value)
	}

	sent, inScript, _ = op("POST", "/v1/locks/"+name+"/acquire", `{"owner":"second"}`, 409)
	check("refused acquire", sent, inScript, []string{"GET lock:" + name, "PTTL lock:" + name, "XADD lockd:events"})

	sent, inScript, _ = op("POST", "/v1/locks/"+name+"/extend", tokenJSON(token), 200)
	check("extend", sent, inScript, []string{"GET lock:" + name, "PEXPIRE lock:" + name, "XADD lockd:events"})

	sent, inScript, _ = op("GET", "/v1/locks/"+name, "", 200)
	check("inspect", sent, inScript, []string{"GET lock:" + name, "PTTL lock:" + name})

	sent, inScript, _ = op("POST", "/v1/locks/"+name+"/check", fmt.Sprintf(`{"fence":%d}`, fence), 200)
	check("check", sent, inScript, []string{"GET lock:" + name, "PTTL lock:" + name})

	sent, inScript, _ = op("POST", "/v1/locks/"+name+"/release", tokenJSON(token), 204)
	// Nobody waits and this replica granted it: no wake-up to send. TIME
	// times the hold on Redis's clock, which timed the grant.
	check("release", sent, inScript, []string{"GET lock:" + name, "DEL lock:" + name, "XADD lockd:events", "TIME"})

	// Nothing names the released lock any more.
	if keys := rdb.Keys(ctx, "*"+name+"*").Val(); len(keys) != 0 {
		t.Errorf("keys naming the released lock: %q", keys)
	}

	// A caller that waits marks the grant that refused it, in the same
	// script, and the grant's release then wakes it with a PUBLISH.
	_, _, body = op("POST", "/v1/locks/"+name+"/acquire", `{"ttl":"30s"}`, 200)
	if err := json.Unmarshal([]byte(body), &l); err != nil {
		t.Fatal(err)
	}
	waited := make(chan reply, 1)
	go func() {
		r, _ := send(t, "POST", web.url+"/v1/locks/"+name+"/acquire", http.Header{"Content-Type": {"application/json"}}, `{"ttl":"30s","wait":"10s"}`)
		waited <- r
	}()
	mark := `"SET" "lock:` + name + `" "*`
	for _, line := range mon.WaitFor(t, mark, 5*time.Second) {
		if strings.Contains(line, mark) && !strings.HasSuffix(line, `"KEEPTTL"`) {
			t.Errorf("the refused waiter marked the grant with %s, want SET ... KEEPTTL", line)
		}
	}
	_, inScript, _ = op("POST", "/v1/locks/"+name+"/release", tokenJSON(l.Token), 204)
	if !slices.Contains(inScript, "PUBLISH lockd:released") {
		t.Errorf("release of a grant someone waits for ran %q, want a PUBLISH", inScript)
	}
	select {
	case r := <-waited:
		if r.status != 200 {
			t.Errorf("waiter: %d %s", r.status, r.body)
		}
	case <-time.After(5 * time.Second):
		t.Error("the waiter was not woken by the release")
	}
}
