package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.ReleaseMode) // as main does
	goleak.VerifyTestMain(m)
}

type replica struct {
	url  string
	logs *redistest.Buffer
	stop func() error
}

// startLockd runs lockd in-process through run(), on a free port, with env
// as its whole environment.
func startLockd(t *testing.T, env map[string]string) *replica {
	t.Helper()
	env["PORT"] = "0"
	logs := &redistest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, nil, func(k string) string { return env[k] }, logs, io.Discard) }()
	port := logs.WaitFor(t, `lockd listening\W+addr\W+[^\s"]*:(\d+)`, 10*time.Second)[1] // text or JSON
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-errc:
			case <-time.After(20 * time.Second):
				stopErr = fmt.Errorf("lockd did not stop")
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("lockd stop: %v", err)
		}
	})
	return &replica{url: "http://127.0.0.1:" + port, logs: logs, stop: stop}
}

// startReady starts lockd and waits until it has prepared Redis.
func startReady(t *testing.T, env map[string]string) *replica {
	t.Helper()
	r := startLockd(t, env)
	r.logs.WaitFor(t, "Redis ready", 5*time.Second)
	return r
}

// inFlight sends GET /lock for id and returns once the lock is taken; the
// reply arrives on the channel when the critical operation ends.
func inFlight(t *testing.T, web *replica, id string) <-chan reply {
	t.Helper()
	done := make(chan reply, 1)
	go func() { done <- get(t, web.url+"/lock?resource_id="+id) }()
	web.logs.WaitFor(t, "Lock acquired for resource "+id+",", 5*time.Second)
	return done
}

// dotEnvRedis starts a Redis with the password and database of .env and
// returns it with the environment a replica needs to use it.
func dotEnvRedis(t *testing.T) (*redistest.Server, int, map[string]string) {
	t.Helper()
	password, db := redistest.DotEnv(t)
	srv := redistest.Start(t, redistest.Options{Password: password})
	return srv, db, map[string]string{
		"REDIS_ADDR": srv.Addr, "REDIS_PASSWORD": password, "REDIS_DB": strconv.Itoa(db),
	}
}

func with(base map[string]string, kv ...string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

type reply struct {
	status int
	body   string
	took   time.Duration
}

func get(t *testing.T, url string) reply {
	t.Helper()
	start := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return reply{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b), time.Since(start)}
}

// TestREADMEScenario replays the README: a request on replica 1 takes the
// lock; the same request on replica 2 fails after redsync's retries with the
// README's body and log lines; a later request on replica 2 gets the lock
// once replica 1 has released it.
func TestREADMEScenario(t *testing.T) {
	t.Parallel()
	_, _, env := dotEnvRedis(t)
	web1 := startLockd(t, with(env, "CRITICAL_SECTION_DURATION", "6s"))
	web2 := startLockd(t, with(env, "CRITICAL_SECTION_DURATION", "300ms"))
	web1.logs.WaitFor(t, "Redis ready", 5*time.Second)
	web2.logs.WaitFor(t, "Redis ready", 5*time.Second)

	first := make(chan reply, 1)
	go func() { first <- get(t, web1.url+"/lock?resource_id=my-key-1") }()
	web1.logs.WaitFor(t, `Lock acquired for resource my-key-1, performing critical operation`, 5*time.Second)

	second := get(t, web2.url+"/lock?resource_id=my-key-1")
	if want := `{"error":"Failed to acquire lock","details":"lock already taken, locked nodes: [0]"}`; second.status != 500 || second.body != want {
		t.Fatalf("second request: %d %s, want 500 %s", second.status, second.body, want)
	}
	// redsync's defaults: 31 pauses of 50–250 ms between 32 tries.
	if second.took < 1500*time.Millisecond || second.took > 9*time.Second {
		t.Errorf("contended request took %v; redsync's default retries take about 4–5 s", second.took)
	}
	t.Logf("contended request failed after %v (the README shows 4.7s)", second.took)
	web2.logs.WaitFor(t, `(?m)^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d Error: Failed to acquire lock for resource my-key-1: lock already taken, locked nodes: \[0\]$`, time.Second)
	web2.logs.WaitFor(t, `(?m)^\[GIN\] \d{4}/\d\d/\d\d - \d\d:\d\d:\d\d \| 500 \| [\d.]+m?s \| 127\.0\.0\.1 \| GET "/lock\?resource_id=my-key-1"$`, time.Second)

	// Asked while replica 1 still holds it, this one retries until the
	// release and then succeeds.
	third := get(t, web2.url+"/lock?resource_id=my-key-1")
	if want := `{"message":"Lock acquired and released successfully","resource_id":"my-key-1"}`; third.status != 200 || third.body != want {
		t.Fatalf("third request: %d %s, want 200 %s", third.status, third.body, want)
	}
	r1 := <-first
	if r1.status != 200 {
		t.Fatalf("first request: %d %s", r1.status, r1.body)
	}
	for _, re := range []string{
		`(?m)^\S+ \S+ Critical operation completed for resource my-key-1$`,
		`(?m)^\S+ \S+ Lock released for resource my-key-1$`,
		`(?m)^\[GIN\] .* \| 200 \| [\d.]+s \| 127\.0\.0\.1 \| GET "/lock\?resource_id=my-key-1"$`,
	} {
		web1.logs.WaitFor(t, re, time.Second)
	}
	// Replica 2 acquired only after replica 1's release was logged.
	log1, log2 := web1.logs.String(), web2.logs.String()
	if !strings.Contains(log2, "Lock acquired for resource my-key-1") || !strings.Contains(log1, "Lock released for resource my-key-1") {
		t.Fatalf("missing hand-off lines:\nweb-1:\n%s\nweb-2:\n%s", log1, log2)
	}
}

// TestRedisTrace checks the commands on the wire, as the profiler capture
// in doc/DEMO.md shows them, on a freshly started Redis.
func TestRedisTrace(t *testing.T) {
	t.Parallel()
	srv, db, env := dotEnvRedis(t)
	mon := srv.Monitor(t)
	web := startReady(t, with(env, "CRITICAL_SECTION_DURATION", "200ms"))

	if r := get(t, web.url+"/lock?resource_id=my-test-key"); r.status != 200 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	lines := mon.WaitFor(t, `"DEL" "lock:my-test-key"`, 5*time.Second)
	trace := strings.Join(lines, "\n")

	set := regexp.MustCompile(fmt.Sprintf(`(?m)^[\d.]+ \[%d 127\.0\.0\.1:(\d+)\] "set" "lock:my-test-key" "([A-Za-z0-9+/]{22}==)" "ex" "30" "nx"$`, db)).FindStringSubmatch(trace)
	if set == nil {
		t.Fatalf("no SET lock:my-test-key <16 random bytes> EX 30 NX on db %d in:\n%s", db, trace)
	}
	conn, value := set[1], set[2]
	for _, re := range []string{
		fmt.Sprintf(`\[%d 127\.0\.0\.1:\d+\] "evalsha" "e950836ed1e694540c503ef9972b8de518044d3b" "1" "lock:my-test-key" "%s"`, db, regexp.QuoteMeta(value)),
		fmt.Sprintf(`\[%d lua\] "GET" "lock:my-test-key"`, db),
		fmt.Sprintf(`\[%d lua\] "DEL" "lock:my-test-key"`, db),
	} {
		if !regexp.MustCompile(re).MatchString(trace) {
			t.Errorf("trace lacks %s:\n%s", re, trace)
		}
	}
	if strings.Contains(trace, `"eval" "`) {
		t.Errorf("a release fell back to EVAL (the scripts were not loaded at start):\n%s", trace)
	}
	// The SET's connection authenticated and selected the database first.
	auth := regexp.MustCompile(`\[0 127\.0\.0\.1:` + conn + `\] "(?i:hello" "3" "auth|auth)" "\(redacted\)"`)
	sel := regexp.MustCompile(`\[\d+ 127\.0\.0\.1:` + conn + `\] "select" "` + strconv.Itoa(db) + `"`)
	if !auth.MatchString(trace) || !sel.MatchString(trace) {
		t.Errorf("connection %s did not AUTH and SELECT %d before its SET:\n%s", conn, db, trace)
	}
}

func TestLeaseKeptAliveDuringOperation(t *testing.T) {
	t.Parallel()
	srv, db, env := dotEnvRedis(t)
	mon := srv.Monitor(t)
	rdb := srv.Client(t, db)
	web := startReady(t, with(env, "LOCK_EXPIRY", "1s", "CRITICAL_SECTION_DURATION", "2500ms"))

	done := inFlight(t, web, "long-job")
	token := rdb.Get(context.Background(), "lock:long-job").Val()
	// The key must hold the token until the final release deletes it:
	// another value, or the token again after the key was gone (so it was
	// gone before the release), means it left the holder. A key already
	// gone while the answer is on its way is the release, however slowly
	// a loaded machine delivers the answer.
	changed, gone := 0, false
	var r reply
	for r.status == 0 {
		select {
		case r = <-done:
		case <-time.After(50 * time.Millisecond):
			switch v := rdb.Get(context.Background(), "lock:long-job").Val(); {
			case v == "":
				gone = true
			case v != token || gone:
				changed++
			}
		}
	}
	if r.status != 200 {
		t.Fatalf("got %d %s, want 200 after outliving the 1s expiry", r.status, r.body)
	}
	if changed > 0 {
		t.Fatalf("the key left the holder %d times during the operation", changed)
	}
	extends := 0
	for _, l := range mon.Lines() {
		if strings.Contains(l, `"evalsha" "d75bb8b5bd13532ddedd17762e772346e39b321e" "1" "lock:long-job"`) {
			extends++
		}
	}
	if extends < 2 {
		t.Fatalf("saw %d extensions in MONITOR, want at least 2 for 2.5s under a 1s expiry", extends)
	}
}

func TestLostLockCancelsOperation(t *testing.T) {
	t.Parallel()
	srv, db, env := dotEnvRedis(t)
	rdb := srv.Client(t, db)
	web := startReady(t, with(env, "LOCK_EXPIRY", "1s", "CRITICAL_SECTION_DURATION", "20s"))

	done := inFlight(t, web, "fragile")
	rdb.Del(context.Background(), "lock:fragile")
	var r reply
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the operation went on after its lock was deleted")
	}
	var body struct{ Error, Details string }
	if err := json.Unmarshal([]byte(r.body), &body); err != nil || r.status != 500 || body.Error != "Lock lost during critical operation" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	web.logs.WaitFor(t, `Error: Lock lost for resource fragile, critical operation cancelled`, time.Second)
	if strings.Contains(web.logs.String(), "Critical operation completed for resource fragile") {
		t.Fatal("log claims the operation completed")
	}
}

func TestReleaseFailureIsReported(t *testing.T) {
	t.Parallel()
	srv, db, env := dotEnvRedis(t)
	rdb := srv.Client(t, db)
	web := startReady(t, with(env, "CRITICAL_SECTION_DURATION", "1s"))

	done := inFlight(t, web, "vanishing")
	rdb.Del(context.Background(), "lock:vanishing") // before the first extension at 10s
	r := <-done
	if want := `{"error":"Failed to release lock","details":"redsync: failed to unlock, lock was already expired"}`; r.status != 500 || r.body != want {
		t.Fatalf("got %d %s, want 500 %s", r.status, r.body, want)
	}
	web.logs.WaitFor(t, `Error: Failed to release lock for resource vanishing: redsync: failed to unlock, lock was already expired`, time.Second)
}

func TestBadResourceIDsChangeNothing(t *testing.T) {
	t.Parallel()
	srv, db, env := dotEnvRedis(t)
	mon := srv.Monitor(t)
	rdb := srv.Client(t, db)
	web := startReady(t, with(env, "CRITICAL_SECTION_DURATION", "100ms"))

	long := strings.Repeat("k", 257)
	tests := []struct{ query, want string }{
		{"", `{"error":"resource_id is required"}`},
		{"?resource_id=", `{"error":"resource_id is required"}`},
		{"?other=x", `{"error":"resource_id is required"}`},
		{"?resource_id=" + long, `{"error":"invalid resource_id: name is longer than 256 bytes"}`},
		{"?resource_id=a%00b", `{"error":"invalid resource_id: name contains a control character"}`},
		{"?resource_id=line%0Abreak", `{"error":"invalid resource_id: name contains a control character"}`},
		{"?resource_id=del%7F", `{"error":"invalid resource_id: name contains a control character"}`},
		{"?resource_id=%FF%FE", `{"error":"invalid resource_id: name is not valid UTF-8"}`},
	}
	for _, tt := range tests {
		r := get(t, web.url+"/lock"+tt.query)
		if r.status != 400 || r.body != tt.want {
			t.Errorf("GET /lock%.40s: got %d %s, want 400 %s", tt.query, r.status, r.body, tt.want)
		}
	}
	// Only lockd's own restart marker, written at start.
	if keys := rdb.Keys(context.Background(), "*").Val(); len(keys) != 1 || keys[0] != "lockd:node" {
		t.Errorf("keys %q after bad requests, want only lockd:node", keys)
	}
	for _, l := range mon.Lines() {
		if (strings.Contains(l, `"set"`) && !strings.Contains(l, `"lockd:node"`)) || strings.Contains(l, `"evalsha"`) {
			t.Errorf("a bad request reached Redis: %s", l)
		}
	}
	// 256 bytes is still fine.
	if r := get(t, web.url+"/lock?resource_id="+long[:256]); r.status != 200 {
		t.Errorf("256-byte id: got %d %s", r.status, r.body)
	}
}

func TestUnknownRoutesAnswerJSON(t *testing.T) {
	t.Parallel()
	_, _, env := dotEnvRedis(t)
	web := startLockd(t, env)
	for _, tt := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/nope", 404, "not_found"},
		{"POST", "/lock?resource_id=x", 405, "method_not_allowed"},
	} {
		req, _ := http.NewRequest(tt.method, web.url+tt.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Error struct{ Code string } }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || body.Error.Code != tt.code {
			t.Errorf("%s %s: got %d %q, want %d %q", tt.method, tt.path, resp.StatusCode, body.Error.Code, tt.status, tt.code)
		}
	}
}

func TestConfigErrorStopsStart(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), nil, func(k string) string {
		return map[string]string{"LOCK_EXPIRY": "thirty"}[k]
	}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "LOCK_EXPIRY") {
		t.Fatalf("got %v, want an error naming LOCK_EXPIRY", err)
	}
}

// TestStartsBeforeRedis: lockd comes up while Redis is down, says so, and
// works once Redis appears, without a restart.
func TestStartsBeforeRedis(t *testing.T) {
	t.Parallel()
	password, db := redistest.DotEnv(t)
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	web := startLockd(t, map[string]string{
		"REDIS_ADDR": "127.0.0.1:" + strconv.Itoa(port), "REDIS_PASSWORD": password,
		"REDIS_DB": strconv.Itoa(db), "CRITICAL_SECTION_DURATION": "100ms",
	})
	web.logs.WaitFor(t, `Redis not ready, retrying addr=127\.0\.0\.1:\d+ .*err=.*connection refused`, 5*time.Second)
	redistest.Start(t, redistest.Options{Password: password, Port: port})
	web.logs.WaitFor(t, "Redis ready", 10*time.Second)
	if r := get(t, web.url+"/lock?resource_id=late"); r.status != 200 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

// TestShutdownReleasesDemoLocks: a critical section that outlives the
// shutdown timeout is cancelled and its lock released, not left to expire.
func TestShutdownReleasesDemoLocks(t *testing.T) {
	t.Parallel()
	srv, db, env := dotEnvRedis(t)
	rdb := srv.Client(t, db)
	web := startReady(t, with(env, "CRITICAL_SECTION_DURATION", "30s", "SHUTDOWN_TIMEOUT", "200ms"))
	done := inFlight(t, web, "interrupted")

	if err := web.stop(); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.status != 503 {
		t.Errorf("in-flight request: got %d %s, want 503", r.status, r.body)
	}
	if n := rdb.Exists(context.Background(), "lock:interrupted").Val(); n != 0 {
		t.Fatal("the demo lock outlived the shutdown")
	}
	web.logs.WaitFor(t, "Lock released for resource interrupted", time.Second)
}

// TestListenAddr: with LISTEN_ADDR=127.0.0.1 lockd listens there and only
// there; by default it listens on every interface; a value that is not an
// address or a host name stops the start with an error naming it.
func TestListenAddr(t *testing.T) {
	t.Parallel()
	_, _, env := dotEnvRedis(t)
	web := startReady(t, with(env, "LISTEN_ADDR", "127.0.0.1"))
	addr := web.logs.WaitFor(t, `lockd listening.*?addr"?[=:]"?([^\s"]+)`, time.Second)[1]
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("LISTEN_ADDR=127.0.0.1: lockd listens on %s", addr)
	}
	if r := get(t, web.url+"/healthz"); r.status != http.StatusOK {
		t.Errorf("/healthz on %s: %d %s", addr, r.status, r.body)
	}
	// Where this host has IPv6 loopback, the same port there is not lockd.
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		_ = ln.Close()
		_, port, _ := net.SplitHostPort(addr)
		if conn, err := net.Dial("tcp", net.JoinHostPort("::1", port)); err == nil {
			_ = conn.Close()
			t.Errorf("LISTEN_ADDR=127.0.0.1, yet [::1]:%s answers", port)
		}
	}

	all := startLockd(t, with(env))
	if addr := all.logs.WaitFor(t, `lockd listening.*?addr"?[=:]"?([^\s"]+)`, time.Second)[1]; !strings.HasPrefix(addr, "[::]:") && !strings.HasPrefix(addr, "0.0.0.0:") {
		t.Errorf("by default lockd listens on %s, want every interface", addr)
	}

	for _, bad := range []string{"127.0.0.1:8080", "http://localhost", "not a host"} {
		err := run(context.Background(), nil, func(k string) string { return map[string]string{"LISTEN_ADDR": bad}[k] }, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "LISTEN_ADDR") || strings.Contains(err.Error(), "\n") {
			t.Errorf("LISTEN_ADDR=%q: got %v, want a one-line error naming LISTEN_ADDR", bad, err)
		}
	}
}

// TestConfigCeilingsAreTheLocks: internal/config keeps its own copy of the
// lock's ceilings (it imports no other package of the project).
func TestConfigCeilingsAreTheLocks(t *testing.T) {
	if config.LongestTTL != lock.MaxTTL || config.LongestWait != lock.MaxWait {
		t.Errorf("config ceilings %v, %v; lock's %v, %v", config.LongestTTL, config.LongestWait, lock.MaxTTL, lock.MaxWait)
	}
}

// TestRunLogsTheRedisMode: in cluster and Sentinel mode there is no node
// list; lockd still starts and stops, and its startup line names the mode
// and the addresses, never a password. The addresses are closed ports:
// this is about the start, not about Redis.
func TestRunLogsTheRedisMode(t *testing.T) {
	t.Parallel()
	const pw = "mode-pw-5e0c2a"
	tests := []struct {
		env  map[string]string
		want string
	}{{
		env:  map[string]string{"REDIS_ADDR": "127.0.0.1:1", "REDIS_PASSWORD": pw, "REDIS_DB": "2", "REDIS_MIN_REPLICAS": "1"},
		want: `redis=127.0.0.1:1 db=2 mode=single min_replicas=1 replica_timeout=500ms`,
	}, {
		env:  map[string]string{"REDIS_CLUSTER_ADDRS": "127.0.0.1:1,127.0.0.1:2", "REDIS_USERNAME": "lockd", "REDIS_PASSWORD": pw},
		want: `redis=127.0.0.1:1,127.0.0.1:2 db=0 mode=cluster`,
	}, {
		env: map[string]string{"REDIS_SENTINEL_ADDRS": "127.0.0.1:1", "REDIS_MASTER_NAME": "mymaster",
			"REDIS_SENTINEL_PASSWORD": pw, "REDIS_PASSWORD": pw, "REDIS_DB": "3", "REDIS_MIN_REPLICAS": "2", "REDIS_REPLICA_TIMEOUT": "1s"},
		want: `redis=127.0.0.1:1 db=3 mode=sentinel master=mymaster min_replicas=2 replica_timeout=1s`,
	}}
	for _, tt := range tests {
		web := startLockd(t, tt.env)
		line := web.logs.WaitFor(t, `lockd listening.*`, time.Second)[0]
		if !strings.HasSuffix(line, " "+tt.want) {
			t.Errorf("startup line %q, want it to end with %q", line, tt.want)
		}
		if r := get(t, web.url+"/readyz?verbose"); r.status != http.StatusServiceUnavailable {
			t.Errorf("%s: /readyz %d %s, want 503: Redis is not there", tt.want, r.status, r.body)
		}
		if err := web.stop(); err != nil {
			t.Errorf("%s: stop: %v", tt.want, err)
		}
		if strings.Contains(web.logs.String(), pw) {
			t.Errorf("the log shows the password:\n%s", web.logs.String())
		}
	}
}
