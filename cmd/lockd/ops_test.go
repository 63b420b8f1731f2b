package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/buildtest"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// Distinctive secrets: finding one in a log or a body means it leaked.
const (
	opsPassword = "ops-redis-pw-93b1f0"
	opsToken    = "ops-api-token-5e27c8d1"
)

// process is lockd running as a real process.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *redistest.Buffer
	exited         chan struct{}
	err            error // Wait's result, once exited is closed
}

// startProcess runs bin with args and env as its whole environment (and
// PATH), in an empty directory so that no .env is read. It is killed at the
// end of the test if still running.
func startProcess(t *testing.T, bin string, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &process{cmd: cmd, stdout: &redistest.Buffer{}, stderr: &redistest.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// wait waits up to limit for the process to exit and returns its exit code.
func (p *process) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(limit):
		t.Fatalf("process still running after %v; stdout:\n%s\nstderr:\n%s", limit, p.stdout, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitUntil polls cond every 20ms for up to limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
	}
}

// send is one request with headers. It reports failures with t.Errorf, so
// it may run in a goroutine; the status is then 0.
func send(t *testing.T, method, url string, header http.Header, body string) (reply, http.Header) {
	t.Helper()
	start := time.Now()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return reply{}, nil
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err)
		return reply{}, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, string(b), time.Since(start)}, resp.Header
}

func errorCode(body string) string {
	var e struct{ Error struct{ Code string } }
	_ = json.Unmarshal([]byte(body), &e)
	return e.Error.Code
}

// metric is the value of the scrape's first sample whose line starts with
// name and holds every one of labels, or -1.
func metric(scrape, name string, labels ...string) float64 {
	for line := range strings.Lines(scrape) {
		series, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || (series != name && !strings.HasPrefix(series, name+"{")) {
			continue
		}
		all := true
		for _, l := range labels {
			all = all && strings.Contains(series, l)
		}
		if v, err := strconv.ParseFloat(value, 64); all && err == nil {
			return v
		}
	}
	return -1
}

// TestSIGTERMDrains runs the real binary and sends it a real SIGTERM while
// a /v1 lease is held, a /v1 waiter waits and a demo request is in its
// critical section: the waiter is answered 503 at once, the demo request
// finishes and releases its lock, the lease is left in Redis, and the
// process exits 0.
func TestSIGTERMDrains(t *testing.T) {
	t.Parallel()
	bin := buildtest.Binary(t, buildtest.Module+"/cmd/lockd")
	srv := redistest.Start(t, redistest.Options{Password: opsPassword})
	rdb := srv.Client(t, 0)
	port := strconv.Itoa(freePort(t))
	url := "http://127.0.0.1:" + port
	p := startProcess(t, bin, map[string]string{
		"PORT": port, "REDIS_ADDR": srv.Addr, "REDIS_PASSWORD": opsPassword, "LOG_FORMAT": "json",
		"SHUTDOWN_TIMEOUT": "10s", "CRITICAL_SECTION_DURATION": "3s",
	})
	waitUntil(t, 10*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	if r, _ := send(t, "POST", url+"/v1/locks/lease/acquire", nil, `{"ttl":"60s"}`); r.status != http.StatusOK {
		t.Fatalf("acquire: %d %s", r.status, r.body)
	}
	type answer struct {
		reply
		header http.Header
		at     time.Time
	}
	waiter := make(chan answer, 1)
	go func() {
		r, h := send(t, "POST", url+"/v1/locks/lease/acquire", nil, `{"wait":"1m"}`)
		waiter <- answer{r, h, time.Now()}
	}()
	demo := make(chan answer, 1)
	go func() {
		r, h := send(t, "GET", url+"/lock?resource_id=demo-job", nil, "")
		demo <- answer{r, h, time.Now()}
	}()
	p.stdout.WaitFor(t, `Lock acquired for resource demo-job`, 5*time.Second)
	waitUntil(t, 5*time.Second, "lockd_waiters 1", func() bool {
		r, _ := send(t, "GET", url+"/metrics", nil, "")
		return metric(r.body, "lockd_waiters") == 1
	})

	sent := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	w := <-waiter
	if took := w.at.Sub(sent); w.status != http.StatusServiceUnavailable || errorCode(w.body) != "unavailable" ||
		w.header.Get("Retry-After") == "" || took > 3*time.Second {
		t.Errorf("waiter: %d %s (Retry-After %q) %v after SIGTERM; want 503 unavailable at once",
			w.status, w.body, w.header.Get("Retry-After"), took)
	}
	// New connections are refused while the demo request finishes.
	waitUntil(t, 2*time.Second, "the listener closed while draining", func() bool {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err == nil {
			conn.Close()
		}
		return err != nil
	})
	d := <-demo
	if want := `{"message":"Lock acquired and released successfully","resource_id":"demo-job"}`; d.status != http.StatusOK || d.body != want {
		t.Errorf("demo request: %d %s, want 200 %s", d.status, d.body, want)
	}
	if took := d.at.Sub(sent); took > 9*time.Second {
		t.Errorf("demo request answered %v after SIGTERM, not within its 3s critical section", took)
	}
	if code := p.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit code %d; stderr:\n%s", code, p.stderr)
	}
	t.Logf("waiter answered %v, demo %v, exit %v after SIGTERM", w.at.Sub(sent), d.at.Sub(sent), time.Since(sent))

	ctx := context.Background()
	if n := rdb.Exists(ctx, "lock:demo-job").Val(); n != 0 {
		t.Error("the demo lock outlived the process")
	}
	if ttl := rdb.PTTL(ctx, "lock:lease").Val(); ttl <= 0 || ttl > 60*time.Second {
		t.Errorf("the /v1 lease's TTL after exit is %v; want it left alone (up to 60s)", ttl)
	}
	p.stdout.WaitFor(t, `"msg":"lockd stopped"`, time.Second)
	if log := p.stdout.String() + p.stderr.String(); strings.Contains(log, opsPassword) {
		t.Errorf("the Redis password is in the log:\n%s", log)
	}
}

// runHealthcheck runs "lockd healthcheck" against port and returns its exit
// code and stderr.
func runHealthcheck(t *testing.T, bin string, port int) (int, string) {
	t.Helper()
	start := time.Now()
	p := startProcess(t, bin, map[string]string{"PORT": strconv.Itoa(port)}, "healthcheck")
	code := p.wait(t, 10*time.Second)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("healthcheck took %v", took)
	}
	if strings.Contains(p.stdout.String(), "listening") {
		t.Errorf("healthcheck started a server: %s", p.stdout)
	}
	return code, p.stderr.String()
}

// TestHealthcheckCommand: "lockd healthcheck" exits 0 against a ready
// lockd, and 1 with a reason when nothing listens or Redis is down; it
// never serves itself.
func TestHealthcheckCommand(t *testing.T) {
	t.Parallel()
	bin := buildtest.Binary(t, buildtest.Module+"/cmd/lockd")
	srv := redistest.Start(t, redistest.Options{Password: opsPassword})
	port := freePort(t)
	lockd := startProcess(t, bin, map[string]string{
		"PORT": strconv.Itoa(port), "REDIS_ADDR": srv.Addr, "REDIS_PASSWORD": opsPassword,
	})
	lockd.stdout.WaitFor(t, "Redis ready", 10*time.Second)

	if code, stderr := runHealthcheck(t, bin, port); code != 0 {
		t.Errorf("against a ready lockd: exit %d, stderr %s", code, stderr)
	}

	idle := freePort(t)
	code, stderr := runHealthcheck(t, bin, idle)
	if code != 1 || !strings.Contains(stderr, "not ready") {
		t.Errorf("nothing listening: exit %d, stderr %q; want 1 and a reason", code, stderr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(idle))
	if err != nil {
		t.Errorf("the port healthcheck asked is no longer free: %v", err)
	} else {
		l.Close()
	}

	srv.Stop()
	code, stderr = runHealthcheck(t, bin, port)
	if code != 1 || !strings.Contains(stderr, "not ready (503)") || strings.Contains(stderr, opsPassword) {
		t.Errorf("Redis down: exit %d, stderr %q; want 1 and the 503's reason", code, stderr)
	}
	t.Logf("Redis down: %s", strings.TrimSpace(stderr))

	if code, stderr := runHealthcheck(t, bin, port); code != 1 {
		t.Errorf("still down: exit %d, stderr %q", code, stderr)
	}
}

// TestProbes: /healthz answers without Redis; /readyz follows Redis, names
// the node that is down, and recovers by itself when Redis is back on the
// same port.
func TestProbes(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	web := startLockd(t, map[string]string{"REDIS_ADDR": addr, "REDIS_PASSWORD": opsPassword})

	healthy := func() {
		t.Helper()
		if r := get(t, web.url+"/healthz"); r.status != http.StatusOK || r.body != `{"status":"alive"}` {
			t.Errorf("/healthz: %d %s", r.status, r.body)
		}
	}
	down := func(rd readiness) bool {
		return rd.Status == "not_ready" && rd.Reason == "redis" && strings.Contains(rd.Detail, addr) && len(rd.Nodes) == 1 && !rd.Nodes[0].OK
	}
	ready := func(r reply, rd readiness) bool { return r.status == http.StatusOK && rd.Status == "ready" }

	// Before Redis ever ran.
	healthy()
	r, _ := waitReadyz(t, web, 5*time.Second, func(r reply, rd readiness) bool { return r.status == 503 && down(rd) })
	t.Logf("no Redis: %s", r.body)

	srv := redistest.Start(t, redistest.Options{Password: opsPassword, Port: port})
	waitReadyz(t, web, 10*time.Second, ready)
	healthy()

	srv.Stop()
	r, _ = waitReadyz(t, web, 5*time.Second, func(r reply, rd readiness) bool { return r.status == 503 && down(rd) })
	healthy()

	redistest.Start(t, redistest.Options{Password: opsPassword, Port: port})
	waitReadyz(t, web, 10*time.Second, ready)
	if strings.Contains(r.body, opsPassword) || strings.Contains(web.logs.String(), opsPassword) {
		t.Errorf("the Redis password leaked: /readyz %s\nlog:\n%s", r.body, web.logs)
	}
}

// TestEvictingRedisNotReady: against a Redis whose maxmemory-policy can
// evict held locks, lockd logs an error naming the node, the setting, its
// value and the fix, and /readyz answers 503 with that reason; fixing the
// policy makes it ready without a restart.
func TestEvictingRedisNotReady(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Password: opsPassword, Args: []string{"--maxmemory-policy", "allkeys-lru"}})
	web := startLockd(t, map[string]string{"REDIS_ADDR": srv.Addr, "REDIS_PASSWORD": opsPassword, "LOG_FORMAT": "json"})

	web.logs.WaitFor(t, `"msg":"Redis not ready, retrying".*maxmemory-policy is allkeys-lru`, 5*time.Second)
	refused := records(t, web.logs.String(), func(r map[string]any) bool {
		msg, _ := r["msg"].(string)
		return strings.HasPrefix(msg, "Redis node refused")
	})
	if len(refused) != 1 {
		t.Fatalf("got %d refusals logged, want 1:\n%s", len(refused), web.logs)
	}
	for k, want := range map[string]string{"level": "ERROR", "addr": srv.Addr, "setting": "maxmemory-policy", "value": "allkeys-lru"} {
		if got, _ := refused[0][k].(string); got != want {
			t.Errorf("refusal logged with %s %q, want %q: %v", k, got, want, refused[0])
		}
	}
	if fix, _ := refused[0]["fix"].(string); !strings.HasPrefix(fix, "set maxmemory-policy noeviction") {
		t.Errorf("refusal logged with fix %q, want maxmemory-policy noeviction", fix)
	}
	r, rd := waitReadyz(t, web, 5*time.Second, func(_ reply, rd readiness) bool { return rd.Status == "not_ready" })
	if r.status != http.StatusServiceUnavailable || len(rd.Nodes) != 1 || rd.Nodes[0].OK {
		t.Fatalf("/readyz: got %d %s, want 503 with the node failing", r.status, r.body)
	}
	for _, want := range []string{"maxmemory-policy is allkeys-lru", "set maxmemory-policy noeviction"} {
		if !strings.Contains(rd.Detail, want) || !strings.Contains(rd.Nodes[0].Error, want) {
			t.Errorf("/readyz: got %s, want detail and node error to say %q", r.body, want)
		}
	}
	if strings.Contains(web.logs.String(), "Redis ready") {
		t.Errorf("lockd said Redis was ready:\n%s", web.logs)
	}

	if err := srv.Client(t, 0).ConfigSet(context.Background(), "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, web, 5*time.Second, func(r reply, rd readiness) bool { return r.status == http.StatusOK && rd.Status == "ready" })
	web.logs.WaitFor(t, "Redis node fit for locks again", 5*time.Second)
	web.logs.WaitFor(t, "Redis ready", 10*time.Second)
}

// records returns the JSON log records that satisfy match.
func records(t *testing.T, logs string, match func(map[string]any) bool) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("a log line is not JSON: %s", sc.Text())
			continue
		}
		if match(rec) {
			out = append(out, rec)
		}
	}
	return out
}

// TestRequestIDsAndSecretsInLogs: a sane X-Request-ID is echoed, any other
// is replaced by a fresh one, and the id is in the request's access record
// and in its demo lines; tokens and the Redis password are in no log line.
func TestRequestIDsAndSecretsInLogs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Password: opsPassword})
	web := startReady(t, map[string]string{
		"REDIS_ADDR": srv.Addr, "REDIS_PASSWORD": opsPassword, "LOG_FORMAT": "json",
		"CRITICAL_SECTION_DURATION": "50ms", "API_TOKENS": opsToken,
	})
	generated := regexp.MustCompile(`^[0-9a-f]{24}$`)
	for i, tc := range []struct {
		name, sent string
		echoed     bool
	}{
		{"sane", "trace-abc_123:4/5+6=.", true},
		{"absent", "", false},
		{"spaces", "has some spaces", false},
		{"200 chars", strings.Repeat("r", 200), false},
		{"128 chars", strings.Repeat("s", 128), true},
		{"non-ASCII", "café", false},
		{"quote", `a"b`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resource := "rid-" + strconv.Itoa(i)
			// With API_TOKENS set, the demo needs the token too.
			h := http.Header{"Authorization": {"Bearer " + opsToken}}
			if tc.sent != "" {
				h.Set("X-Request-Id", tc.sent)
			}
			r, hdr := send(t, "GET", web.url+"/lock?resource_id="+resource, h, "")
			if r.status != http.StatusOK {
				t.Fatalf("GET /lock: %d %s", r.status, r.body)
			}
			id := hdr.Get("X-Request-ID")
			if tc.echoed && id != tc.sent || !tc.echoed && !generated.MatchString(id) {
				t.Fatalf("sent %q, got X-Request-ID %q", tc.sent, id)
			}
			web.logs.WaitFor(t, `"msg":"http request".*"path":"/lock\?resource_id=`+resource+`"`, time.Second)
			for _, msg := range []string{
				"http request",
				"Lock acquired for resource " + resource + ", performing critical operation",
				"Lock released for resource " + resource,
			} {
				got := records(t, web.logs.String(), func(rec map[string]any) bool {
					return rec["msg"] == msg && (msg != "http request" || rec["path"] == "/lock?resource_id="+resource)
				})
				if len(got) != 1 || got[0]["request_id"] != id {
					t.Errorf("records %q: %v, want one with request_id %q", msg, got, id)
				}
			}
		})
	}

	// A lease's token and the API token are never logged, nor the password.
	auth := http.Header{"Authorization": {"Bearer " + opsToken}}
	r, _ := send(t, "POST", web.url+"/v1/locks/secretive/acquire", auth, `{"ttl":"30s","owner":"o"}`)
	var lease struct{ Token string }
	if err := json.Unmarshal([]byte(r.body), &lease); err != nil || r.status != http.StatusOK {
		t.Fatalf("acquire: %d %s", r.status, r.body)
	}
	forged := strings.Repeat("f", 22)
	for _, body := range []string{tokenJSON(forged), tokenJSON(lease.Token)} {
		send(t, "POST", web.url+"/v1/locks/secretive/extend", auth, body)
		send(t, "POST", web.url+"/v1/locks/secretive/release", auth, body)
	}
	send(t, "GET", web.url+"/v1/locks", http.Header{"Authorization": {"Bearer " + opsToken + "x"}}, "")
	web.logs.WaitFor(t, `"path":"/v1/locks"`, time.Second)
	log := web.logs.String()
	for what, secret := range map[string]string{"lease token": lease.Token, "forged token": forged, "API token": opsToken, "Redis password": opsPassword} {
		if strings.Contains(log, secret) {
			t.Errorf("the %s is in the log:\n%s", what, log)
		}
	}
}

func tokenJSON(token string) string {
	b, _ := json.Marshal(map[string]string{"token": token})
	return string(b)
}

// TestMetrics: /metrics counts what happened without ever naming a lock,
// and is behind the API tokens only with METRICS_REQUIRE_AUTH=true.
func TestMetrics(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Password: opsPassword})
	env := map[string]string{
		"REDIS_ADDR": srv.Addr, "REDIS_PASSWORD": opsPassword, "API_TOKENS": opsToken, "CRITICAL_SECTION_DURATION": "50ms",
	}
	locked := startReady(t, with(env, "METRICS_REQUIRE_AUTH", "true"))
	open := startReady(t, env)

	auth := http.Header{"Authorization": {"Bearer " + opsToken}}
	do := func(path, body string, want int) string {
		t.Helper()
		r, _ := send(t, "POST", locked.url+path, auth, body)
		if r.status != want {
			t.Fatalf("POST %s: %d %s, want %d", path, r.status, r.body, want)
		}
		return r.body
	}
	const granted = 3
	var tokens []string
	for i := range granted {
		body := do("/v1/locks/metric-name-"+strconv.Itoa(i)+"/acquire", `{"ttl":"30s","owner":"metric-owner"}`, 200)
		var l struct {
			Token string
			Fence int64
		}
		_ = json.Unmarshal([]byte(body), &l)
		tokens = append(tokens, l.Token)
		do("/v1/locks/metric-name-"+strconv.Itoa(i)+"/check", `{"fence":`+strconv.FormatInt(l.Fence, 10)+`}`, 200)
	}
	do("/v1/locks/metric-name-0/acquire", `{"wait":"200ms"}`, 409)
	do("/v1/locks/metric-name-0/extend", tokenJSON(tokens[0]), 200)
	for i, tok := range tokens {
		do("/v1/locks/metric-name-"+strconv.Itoa(i)+"/release", tokenJSON(tok), 204)
	}
	// A semaphore's permits are counted apart from locks.
	do("/v1/semaphores/metric-pool/acquire", `{"limit":1,"owner":"metric-owner"}`, 200)
	do("/v1/semaphores/metric-pool/acquire", `{"limit":2}`, 409)

	if r, _ := send(t, "GET", locked.url+"/metrics", nil, ""); r.status != http.StatusUnauthorized || errorCode(r.body) != "unauthenticated" {
		t.Errorf("/metrics without a token, METRICS_REQUIRE_AUTH=true: %d %.200s", r.status, r.body)
	}
	r, _ := send(t, "GET", locked.url+"/metrics", auth, "")
	if r.status != http.StatusOK {
		t.Fatalf("/metrics with the token: %d %.200s", r.status, r.body)
	}
	scrape := r.body
	for _, c := range []struct {
		name   string
		labels []string
		min    float64
	}{
		{"lockd_acquisitions_total", []string{`kind="lock"`, `result="granted"`}, granted},
		{"lockd_acquisitions_total", []string{`kind="lock"`, `result="locked"`}, 1},
		{"lockd_acquisitions_total", []string{`kind="semaphore"`, `result="granted"`}, 1},
		{"lockd_acquisitions_total", []string{`kind="semaphore"`, `result="limit_mismatch"`}, 1},
		{"lockd_releases_total", []string{`kind="lock"`, `result="released"`}, granted},
		{"lockd_extensions_total", []string{`kind="lock"`, `result="extended"`}, 1},
		{"lockd_fence_checks_total", []string{`kind="lock"`, `result="current"`}, granted},
		{"lockd_waiters", nil, 0},
		{"lockd_wait_duration_seconds_count", nil, granted + 1},
		{"lockd_redis_command_duration_seconds_count", []string{`node="0"`}, 1},
		{"lockd_http_requests_total", []string{`route="/v1/locks/:name/acquire"`, `method="POST"`, `status="200"`}, granted},
		{"lockd_http_requests_total", []string{`route="/v1/locks/:name/acquire"`, `status="409"`}, 1},
		{"lockd_http_requests_total", []string{`route="/metrics"`, `status="401"`}, 1},
	} {
		if got := metric(scrape, c.name, c.labels...); got < c.min {
			t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, got, c.min)
		}
	}
	for _, secret := range append([]string{"metric-name", "metric-owner", opsToken}, tokens...) {
		if strings.Contains(scrape, secret) {
			t.Errorf("the scrape names %q", secret)
		}
	}

	if r, _ := send(t, "GET", open.url+"/metrics", nil, ""); r.status != http.StatusOK || !strings.Contains(r.body, "lockd_waiters") {
		t.Errorf("/metrics without METRICS_REQUIRE_AUTH: %d %.200s", r.status, r.body)
	}
}

// TestEvenQuorumWarns: two or four quorum nodes tolerate no more failures
// than one or three; lockd says so at start, and not for three.
func TestEvenQuorumWarns(t *testing.T) {
	t.Parallel()
	addrs := func(n int) string {
		var a []string
		for range n {
			a = append(a, fmt.Sprintf("127.0.0.1:%d", freePort(t))) // nobody listens: the warning comes first
		}
		return strings.Join(a, ",")
	}
	for _, tc := range []struct {
		nodes int
		warn  bool
	}{{2, true}, {3, false}, {4, true}} {
		web := startLockd(t, map[string]string{"REDIS_ADDRS": addrs(tc.nodes)})
		logs := web.logs.String()
		if got := strings.Contains(logs, "even number of Redis nodes"); got != tc.warn {
			t.Errorf("%d nodes: warned %v, want %v:\n%s", tc.nodes, got, tc.warn, logs)
		}
		if err := web.stop(); err != nil {
			t.Error(err)
		}
	}
}
