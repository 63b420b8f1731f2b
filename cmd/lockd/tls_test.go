package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// lockdPassword is the ACL password of the lockd user on the TLS servers
// below; distinctive, so that finding it in a log means it leaked.
const lockdPassword = "acl-pw-6d1f9e"

// tlsRedis starts a Redis that speaks only TLS and has a lockd user with
// the rule lockd needs, and returns it with the environment lockd reaches
// it with as that user, giving password.
func tlsRedis(t *testing.T, password string) (*redistest.Server, map[string]string) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{
		TLS:      true,
		Password: "admin-pw-41c2b7", // the default user is not lockd's
		Users:    []string{"lockd on >" + lockdPassword + " " + lock.LockdACL},
	})
	return srv, map[string]string{
		"REDIS_URLS":                "rediss://lockd:" + password + "@" + srv.Addr + "/0",
		"REDIS_CA_FILE":             srv.CAFile,
		"CRITICAL_SECTION_DURATION": "100ms",
	}
}

// readiness is the body of GET /readyz?verbose, which a client on
// loopback (as tests are) gets in full when no API token is set.
type readiness struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
	Nodes  []struct {
		Addr  string `json:"addr"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"nodes"`
}

// waitReadyz polls /readyz until its answer satisfies done, and returns the
// last answer, raw and decoded.
func waitReadyz(t *testing.T, web *replica, limit time.Duration, done func(reply, readiness) bool) (reply, readiness) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		r := get(t, web.url+"/readyz?verbose")
		var rd readiness
		err := json.Unmarshal([]byte(r.body), &rd)
		if err == nil && done(r, rd) {
			return r, rd
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered as expected within %v; last: %d %s (%v)\nlog:\n%s", limit, r.status, r.body, err, web.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func post(t *testing.T, url, body string) reply {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: string(b)}
}

// acquireRelease takes name's first lease and releases it: between them
// the fence script, redsync's scripts and the release wake-up all run.
func acquireRelease(t *testing.T, web *replica, name string) {
	t.Helper()
	acq := post(t, web.url+"/v1/locks/"+name+"/acquire", `{"ttl":"30s","owner":"tls-test"}`)
	var lease struct {
		Token string `json:"token"`
		Fence int64  `json:"fence"`
	}
	if err := json.Unmarshal([]byte(acq.body), &lease); acq.status != http.StatusOK || err != nil || lease.Token == "" || lease.Fence < 1 {
		t.Fatalf("acquire: got %d %s, want 200 with a token and a fence", acq.status, acq.body)
	}
	if rel := post(t, web.url+"/v1/locks/"+name+"/release", `{"token":"`+lease.Token+`"}`); rel.status != http.StatusNoContent {
		t.Fatalf("release: got %d %s, want 204", rel.status, rel.body)
	}
}

// TestRedisTLSWithACLUser: over rediss:// with REDIS_CA_FILE, as an ACL user
// limited to LockdACL, lockd is ready and takes and releases locks.
func TestRedisTLSWithACLUser(t *testing.T) {
	t.Parallel()
	srv, env := tlsRedis(t, lockdPassword)
	web := startLockd(t, env)

	r, rd := waitReadyz(t, web, 10*time.Second, func(r reply, _ readiness) bool { return r.status == http.StatusOK })
	if rd.Status != "ready" || len(rd.Nodes) != 1 || rd.Nodes[0].Addr != srv.Addr || !rd.Nodes[0].OK {
		t.Errorf("/readyz: got %s, want ready with node %s ok", r.body, srv.Addr)
	}

	acquireRelease(t, web, "tls-job")
	if log := web.logs.String(); strings.Contains(log, lockdPassword) || strings.Contains(log, "NOPERM") {
		t.Errorf("the log shows the ACL password or a refused command:\n%s", log)
	}
	checkRefusals(t, 0, srv)
}

// TestRedisTLSByAddress: REDIS_TLS, REDIS_USERNAME and REDIS_PASSWORD do
// for a host:port what a rediss:// URL with a user does.
func TestRedisTLSByAddress(t *testing.T) {
	t.Parallel()
	srv, env := tlsRedis(t, lockdPassword)
	web := startLockd(t, map[string]string{
		"REDIS_ADDR": srv.Addr, "REDIS_TLS": "true", "REDIS_CA_FILE": env["REDIS_CA_FILE"],
		"REDIS_USERNAME": "lockd", "REDIS_PASSWORD": lockdPassword,
	})
	waitReadyz(t, web, 10*time.Second, func(r reply, _ readiness) bool { return r.status == http.StatusOK })
	acquireRelease(t, web, "tls-addr-job")
	if log := web.logs.String(); strings.Contains(log, lockdPassword) || strings.Contains(log, "NOPERM") {
		t.Errorf("the log shows the ACL password or a refused command:\n%s", log)
	}
	checkRefusals(t, 0, srv)
}

// TestRedisTLSQuorumWithACLUser: in quorum mode lockd also reads INFO,
// SCANs and writes its restart marker; LockdACL must cover that too, and one
// REDIS_CA_FILE bundle verifies every node.
func TestRedisTLSQuorumWithACLUser(t *testing.T) {
	t.Parallel()
	var urls []string
	var bundle []byte
	var servers []*redistest.Server
	for range 3 {
		srv, env := tlsRedis(t, lockdPassword)
		servers = append(servers, srv)
		urls = append(urls, env["REDIS_URLS"])
		pem, err := os.ReadFile(srv.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		bundle = append(bundle, pem...)
	}
	caFile := filepath.Join(t.TempDir(), "bundle.pem")
	if err := os.WriteFile(caFile, bundle, 0o644); err != nil {
		t.Fatal(err)
	}
	web := startLockd(t, map[string]string{"REDIS_URLS": strings.Join(urls, ","), "REDIS_CA_FILE": caFile})

	r, rd := waitReadyz(t, web, 15*time.Second, func(r reply, rd readiness) bool {
		return r.status == http.StatusOK && len(rd.Nodes) == 3 && rd.Nodes[0].OK && rd.Nodes[1].OK && rd.Nodes[2].OK
	})
	if rd.Status != "ready" {
		t.Errorf("/readyz: got %s, want ready", r.body)
	}
	acquireRelease(t, web, "tls-quorum-job")
	if log := web.logs.String(); strings.Contains(log, "NOPERM") {
		t.Errorf("lockd ran a command LockdACL refuses:\n%s", log)
	}
	for i, srv := range servers {
		checkRefusals(t, i, srv)
	}
}

// checkRefusals fails t if srv refused lockd anything but CONFIG GET, which
// LockdACL leaves out on purpose and lockd does without.
func checkRefusals(t *testing.T, node int, srv *redistest.Server) {
	t.Helper()
	for _, r := range srv.ACLRefusals(t) {
		if r != "command config|get" {
			t.Errorf("node %d refused lockd %q; LockdACL lacks it", node, r)
		}
	}
}

// TestRedisTLSUnknownCA: a server whose certificate REDIS_CA_FILE does not
// vouch for leaves lockd alive (/healthz) but not ready, and /readyz and
// the log say why.
func TestRedisTLSUnknownCA(t *testing.T) {
	t.Parallel()
	srv, env := tlsRedis(t, lockdPassword)
	other, err := redistest.WriteCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	web := startLockd(t, with(env, "REDIS_CA_FILE", other))

	r, rd := waitReadyz(t, web, 10*time.Second, func(_ reply, rd readiness) bool {
		return strings.Contains(rd.Detail, "certificate")
	})
	if r.status != http.StatusServiceUnavailable || rd.Status != "not_ready" {
		t.Errorf("/readyz: got %d %s, want 503 not_ready", r.status, r.body)
	}
	if len(rd.Nodes) != 1 || rd.Nodes[0].Addr != srv.Addr || rd.Nodes[0].OK || !strings.Contains(rd.Nodes[0].Error, "certificate") {
		t.Fatalf("/readyz nodes: got %s, want %s failing certificate verification", r.body, srv.Addr)
	}
	// The reason prefixes the node's address, the log its index and the
	// step that failed; the cause itself must read the same in both.
	web.logs.WaitFor(t, loggedAs(rd.Nodes[0].Error), 5*time.Second)

	if h := get(t, web.url+"/healthz"); h.status != http.StatusOK {
		t.Errorf("/healthz: got %d %s, want 200 (liveness never asks Redis)", h.status, h.body)
	}
}

// TestRedisWrongACLPassword: a refused password makes lockd not ready with
// Redis's reason, and neither password reaches the log or /readyz.
func TestRedisWrongACLPassword(t *testing.T) {
	t.Parallel()
	const wrong = "wrong-pw-93ab0c"
	_, env := tlsRedis(t, wrong)
	web := startLockd(t, env)

	wrongPass := regexp.MustCompile(`WRONGPASS|invalid username-password`)
	r, rd := waitReadyz(t, web, 10*time.Second, func(_ reply, rd readiness) bool {
		return wrongPass.MatchString(rd.Detail)
	})
	if r.status != http.StatusServiceUnavailable || rd.Status != "not_ready" {
		t.Errorf("/readyz: got %d %s, want 503 not_ready", r.status, r.body)
	}
	web.logs.WaitFor(t, wrongPass.String(), 5*time.Second)
	for _, pw := range []string{wrong, lockdPassword} {
		if strings.Contains(r.body, pw) {
			t.Errorf("/readyz shows the password %q: %s", pw, r.body)
		}
		if strings.Contains(web.logs.String(), pw) {
			t.Errorf("the log shows the password %q:\n%s", pw, web.logs.String())
		}
	}
}

// TestMissingRedisCAFileStopsStart: a CA file that is not there is a
// configuration error, not a Redis outage to wait out.
func TestMissingRedisCAFileStopsStart(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"REDIS_URLS":    "rediss://lockd:" + lockdPassword + "@127.0.0.1:6379/0",
		"REDIS_CA_FILE": filepath.Join(t.TempDir(), "missing.pem"),
		"PORT":          "0",
	}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "REDIS_CA_FILE") {
		t.Fatalf("got %v, want an error naming REDIS_CA_FILE", err)
	}
	if strings.Contains(err.Error(), lockdPassword) {
		t.Errorf("the error shows the password: %v", err)
	}
}

// loggedAs matches s as the log shows it: verbatim, or quoted as the text
// handler quotes a value with spaces.
func loggedAs(s string) string {
	q := strconv.Quote(s)
	return regexp.QuoteMeta(s) + "|" + regexp.QuoteMeta(q[1:len(q)-1])
}
