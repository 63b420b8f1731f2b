package httpapi

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBadInputIsRefusedAndChangesNothing sends each bad request to a
// replica where one lock is held, and checks its status and code, that the
// held lock is untouched and that no key appeared in Redis.
func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, Options{})
	r := c.replicas[0]
	held := r.acquire(t, "held", `{"ttl":"1m","owner":"keeper"}`)
	ctx := context.Background()
	keysBefore := keys(t, c)

	long := strings.Repeat("n", 257)
	huge := `{"owner":"` + strings.Repeat("x", 10<<20) + `"}`
	tokenOf := func(n int) string { return `{"token":"` + strings.Repeat("t", n) + `"}` }
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		// Names.
		{"empty name", "POST", "/v1/locks//acquire", "", 400, "invalid_argument"},
		{"257-byte name", "POST", "/v1/locks/" + long + "/acquire", "", 400, "invalid_argument"},
		{"NUL in name", "POST", "/v1/locks/a%00b/acquire", "", 400, "invalid_argument"},
		{"dot-dot name", "POST", "/v1/locks/../acquire", "", 400, "invalid_argument"},
		{"star name", "POST", "/v1/locks/*/acquire", "", 400, "invalid_argument"},
		{"unicode name", "POST", "/v1/locks/caf%C3%A9/acquire", "", 400, "invalid_argument"},
		{"space in name", "GET", "/v1/locks/a%20b", "", 400, "invalid_argument"},
		{"slash in name", "GET", "/v1/locks/a%2Fb", "", 400, "invalid_argument"},
		{"slash in name on acquire", "POST", "/v1/locks/a%2Fb/acquire", "", 400, "invalid_argument"},
		{"bad name on check", "POST", "/v1/locks/-x/check", `{"fence":1}`, 400, "invalid_argument"},
		{"bad name on release", "POST", "/v1/locks/.x/release", `{"token":"t"}`, 400, "invalid_argument"},
		// TTL and wait.
		{"ttl 0", "POST", "/v1/locks/n/acquire", `{"ttl":"0"}`, 400, "invalid_argument"},
		{"ttl -1s", "POST", "/v1/locks/n/acquire", `{"ttl":"-1s"}`, 400, "invalid_argument"},
		{"ttl abc", "POST", "/v1/locks/n/acquire", `{"ttl":"abc"}`, 400, "invalid_argument"},
		{"ttl 1e3", "POST", "/v1/locks/n/acquire", `{"ttl":"1e3"}`, 400, "invalid_argument"},
		{"ttl 2h", "POST", "/v1/locks/n/acquire", `{"ttl":"2h"}`, 400, "invalid_argument"},
		{"ttl 99ms", "POST", "/v1/locks/n/acquire", `{"ttl":"99ms"}`, 400, "invalid_argument"},
		{"ttl overflow", "POST", "/v1/locks/n/acquire", `{"ttl":"9999999999999h"}`, 400, "invalid_argument"},
		{"ttl as a number", "POST", "/v1/locks/n/acquire", `{"ttl":30}`, 400, "invalid_argument"},
		{"ttl null is the default", "POST", "/v1/locks/held/acquire", `{"ttl":null}`, 409, "locked"},
		{"wait 0 number", "POST", "/v1/locks/n/acquire", `{"wait":0}`, 400, "invalid_argument"},
		{"wait -1s", "POST", "/v1/locks/n/acquire", `{"wait":"-1s"}`, 400, "invalid_argument"},
		{"wait abc", "POST", "/v1/locks/n/acquire", `{"wait":"abc"}`, 400, "invalid_argument"},
		{"wait 1e3", "POST", "/v1/locks/n/acquire", `{"wait":"1e3"}`, 400, "invalid_argument"},
		{"wait 2h", "POST", "/v1/locks/n/acquire", `{"wait":"2h"}`, 400, "invalid_argument"},
		{"wait overflow", "POST", "/v1/locks/n/acquire", `{"wait":"99999999999999999999ns"}`, 400, "invalid_argument"},
		{"extend ttl 0", "POST", "/v1/locks/held/extend", `{"token":"` + held.Token + `","ttl":"0s"}`, 400, "invalid_argument"},
		{"extend ttl 2h", "POST", "/v1/locks/held/extend", `{"token":"` + held.Token + `","ttl":"2h"}`, 400, "invalid_argument"},
		// Modes, fairness and lock-delays.
		{"mode bogus", "POST", "/v1/locks/n/acquire", `{"mode":"bogus"}`, 400, "invalid_argument"},
		{"mode empty", "POST", "/v1/locks/n/acquire", `{"mode":""}`, 400, "invalid_argument"},
		{"mode in capitals", "POST", "/v1/locks/n/acquire", `{"mode":"Shared"}`, 400, "invalid_argument"},
		{"mode as a number", "POST", "/v1/locks/n/acquire", `{"mode":1}`, 400, "invalid_argument"},
		{"bad mode on the held lock", "POST", "/v1/locks/held/acquire", `{"mode":"read"}`, 400, "invalid_argument"},
		{"fair as a string", "POST", "/v1/locks/n/acquire", `{"fair":"true"}`, 400, "invalid_argument"},
		{"fair as a number", "POST", "/v1/locks/n/acquire", `{"fair":1}`, 400, "invalid_argument"},
		{"lock_delay 61s", "POST", "/v1/locks/n/acquire", `{"lock_delay":"61s"}`, 400, "invalid_argument"},
		{"lock_delay -1s", "POST", "/v1/locks/n/acquire", `{"lock_delay":"-1s"}`, 400, "invalid_argument"},
		{"lock_delay 1500us", "POST", "/v1/locks/n/acquire", `{"lock_delay":"1500us"}`, 400, "invalid_argument"},
		{"lock_delay abc", "POST", "/v1/locks/n/acquire", `{"lock_delay":"abc"}`, 400, "invalid_argument"},
		{"lock_delay as a number", "POST", "/v1/locks/n/acquire", `{"lock_delay":5000}`, 400, "invalid_argument"},
		{"limit on a lock", "POST", "/v1/locks/n/acquire", `{"limit":2}`, 400, "invalid_argument"},
		{"limit on the held lock", "POST", "/v1/locks/held/acquire", `{"limit":2}`, 400, "invalid_argument"},
		{"shared on the held lock", "POST", "/v1/locks/held/acquire", `{"mode":"shared"}`, 409, "locked"},
		{"fair without wait on the held lock", "POST", "/v1/locks/held/acquire", `{"fair":true}`, 409, "locked"},
		// Semaphores.
		{"semaphore without limit", "POST", "/v1/semaphores/n/acquire", `{"ttl":"10s"}`, 400, "invalid_argument"},
		{"semaphore without body", "POST", "/v1/semaphores/n/acquire", "", 400, "invalid_argument"},
		{"semaphore limit null", "POST", "/v1/semaphores/n/acquire", `{"limit":null}`, 400, "invalid_argument"},
		{"semaphore limit 0", "POST", "/v1/semaphores/n/acquire", `{"limit":0}`, 400, "invalid_argument"},
		{"semaphore limit -1", "POST", "/v1/semaphores/n/acquire", `{"limit":-1}`, 400, "invalid_argument"},
		{"semaphore limit 1001", "POST", "/v1/semaphores/n/acquire", `{"limit":1001}`, 400, "invalid_argument"},
		{"semaphore limit 1.5", "POST", "/v1/semaphores/n/acquire", `{"limit":1.5}`, 400, "invalid_argument"},
		{"semaphore limit string", "POST", "/v1/semaphores/n/acquire", `{"limit":"3"}`, 400, "invalid_argument"},
		{"semaphore limit overflow", "POST", "/v1/semaphores/n/acquire", `{"limit":99999999999999999999}`, 400, "invalid_argument"},
		{"mode on a semaphore", "POST", "/v1/semaphores/n/acquire", `{"limit":2,"mode":"shared"}`, 400, "invalid_argument"},
		{"mode exclusive on a semaphore", "POST", "/v1/semaphores/n/acquire", `{"limit":2,"mode":"exclusive"}`, 400, "invalid_argument"},
		{"semaphore lock_delay 61s", "POST", "/v1/semaphores/n/acquire", `{"limit":2,"lock_delay":"61s"}`, 400, "invalid_argument"},
		{"semaphore lock_delay -1s", "POST", "/v1/semaphores/n/acquire", `{"limit":2,"lock_delay":"-1s"}`, 400, "invalid_argument"},
		{"semaphore ttl 0", "POST", "/v1/semaphores/n/acquire", `{"limit":2,"ttl":"0"}`, 400, "invalid_argument"},
		{"semaphore wait 2h", "POST", "/v1/semaphores/n/acquire", `{"limit":2,"wait":"2h"}`, 400, "invalid_argument"},
		{"semaphore owner with a newline", "POST", "/v1/semaphores/n/acquire", `{"limit":2,"owner":"a\nb"}`, 400, "invalid_argument"},
		{"semaphore unknown field", "POST", "/v1/semaphores/n/acquire", `{"limit":2,"permits":2}`, 400, "invalid_argument"},
		{"bad name on a semaphore", "POST", "/v1/semaphores/-x/acquire", `{"limit":2}`, 400, "invalid_argument"},
		{"bad name on GET semaphore", "GET", "/v1/semaphores/a%20b", "", 400, "invalid_argument"},
		{"semaphore extend without token", "POST", "/v1/semaphores/n/extend", `{}`, 400, "invalid_argument"},
		{"semaphore extend ttl 2h", "POST", "/v1/semaphores/n/extend", `{"token":"t","ttl":"2h"}`, 400, "invalid_argument"},
		{"semaphore release with empty token", "POST", "/v1/semaphores/n/release", `{"token":""}`, 400, "invalid_argument"},
		{"semaphore check fence 0", "POST", "/v1/semaphores/n/check", `{"fence":0}`, 400, "invalid_argument"},
		{"semaphore check without fence", "POST", "/v1/semaphores/n/check", `{}`, 400, "invalid_argument"},
		{"semaphore on the held lock", "POST", "/v1/semaphores/held/acquire", `{"limit":2}`, 409, "kind_mismatch"},
		{"semaphore release of the held lock", "POST", "/v1/semaphores/held/release", tokenOf(24), 409, "kind_mismatch"},
		{"semaphore release, wrong token", "POST", "/v1/semaphores/n/release", tokenOf(24), 409, "not_holder"},
		{"GET on semaphore acquire", "GET", "/v1/semaphores/n/acquire", "", 405, "method_not_allowed"},
		{"DELETE on a semaphore", "DELETE", "/v1/semaphores/n", "", 405, "method_not_allowed"},
		{"semaphore listing", "GET", "/v1/semaphores", "", 404, "not_found"},
		// Owners.
		{"owner 257 bytes", "POST", "/v1/locks/n/acquire", `{"owner":"` + long + `"}`, 400, "invalid_argument"},
		{"owner with a newline", "POST", "/v1/locks/n/acquire", `{"owner":"a\nb"}`, 400, "invalid_argument"},
		{"owner as a number", "POST", "/v1/locks/n/acquire", `{"owner":7}`, 400, "invalid_argument"},
		// Tokens.
		{"extend without token", "POST", "/v1/locks/held/extend", `{}`, 400, "invalid_argument"},
		{"extend without body", "POST", "/v1/locks/held/extend", "", 400, "invalid_argument"},
		{"release with empty token", "POST", "/v1/locks/held/release", `{"token":""}`, 400, "invalid_argument"},
		{"release with 10 KB token", "POST", "/v1/locks/held/release", tokenOf(10 << 10), 400, "invalid_argument"},
		{"release with token as number", "POST", "/v1/locks/held/release", `{"token":12}`, 400, "invalid_argument"},
		{"release with a wrong token", "POST", "/v1/locks/held/release", tokenOf(24), 409, "not_holder"},
		// Fences.
		{"check without fence", "POST", "/v1/locks/held/check", `{}`, 400, "invalid_argument"},
		{"check fence 0", "POST", "/v1/locks/held/check", `{"fence":0}`, 400, "invalid_argument"},
		{"check fence -1", "POST", "/v1/locks/held/check", `{"fence":-1}`, 400, "invalid_argument"},
		{"check fence 1.5", "POST", "/v1/locks/held/check", `{"fence":1.5}`, 400, "invalid_argument"},
		{"check fence string", "POST", "/v1/locks/held/check", `{"fence":"1"}`, 400, "invalid_argument"},
		{"check fence overflow", "POST", "/v1/locks/held/check", `{"fence":99999999999999999999}`, 400, "invalid_argument"},
		// Bodies.
		{"truncated body", "POST", "/v1/locks/n/acquire", `{"ttl":"30s"`, 400, "invalid_argument"},
		{"unknown field", "POST", "/v1/locks/n/acquire", `{"tll":"30s"}`, 400, "invalid_argument"},
		{"array body", "POST", "/v1/locks/n/acquire", `["30s"]`, 400, "invalid_argument"},
		{"two objects", "POST", "/v1/locks/n/acquire", `{}{}`, 400, "invalid_argument"},
		{"not JSON", "POST", "/v1/locks/n/acquire", `ttl=30s`, 400, "invalid_argument"},
		{"10 MB body", "POST", "/v1/locks/n/acquire", huge, 413, "payload_too_large"},
		// List parameters.
		{"limit 0", "GET", "/v1/locks?limit=0", "", 400, "invalid_argument"},
		{"limit 1001", "GET", "/v1/locks?limit=1001", "", 400, "invalid_argument"},
		{"limit abc", "GET", "/v1/locks?limit=abc", "", 400, "invalid_argument"},
		{"prefix 257 bytes", "GET", "/v1/locks?prefix=" + long, "", 400, "invalid_argument"},
		{"forged cursor", "GET", "/v1/locks?cursor=not-a-cursor", "", 400, "invalid_argument"},
		// Routes and methods.
		{"unknown route", "GET", "/v1/nothing", "", 404, "not_found"},
		{"trailing slash", "GET", "/v1/locks/", "", 404, "not_found"},
		{"GET on acquire", "GET", "/v1/locks/n/acquire", "", 405, "method_not_allowed"},
		{"DELETE on a lock", "DELETE", "/v1/locks/held", "", 405, "method_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := call(t, ctx, tc.method, r.url+tc.path, tc.body)
			if resp.status != tc.status || resp.errorCode() != tc.code {
				t.Errorf("got %d %.300s, want %d %s", resp.status, resp.body, tc.status, tc.code)
			}
		})
	}

	got := r.inspect(t, "held")
	if got.Owner != "keeper" || got.Fence != held.Fence || got.TTLMS > 60_000 {
		t.Errorf("the held lock changed: %+v", got)
	}
	if after := keys(t, c); !slices.Equal(after, keysBefore) {
		t.Errorf("keys in Redis went from %v to %v", keysBefore, after)
	}
}

func keys(t *testing.T, c *cluster) []string {
	t.Helper()
	k, err := c.rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(k)
	return k
}

// TestRedisDownIsUnavailable: with Redis gone every /v1 call answers 503
// with Retry-After, and the body does not leak Redis's address.
func TestRedisDownIsUnavailable(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, Options{})
	r := c.replicas[0]
	l := r.acquire(t, "before", "")
	c.srv.Stop()
	for _, rq := range []struct{ method, path, body string }{
		{"POST", "/v1/locks/x/acquire", ""},
		{"POST", "/v1/locks/x/acquire", `{"wait":"1s"}`},
		{"POST", "/v1/locks/before/extend", tokenBody(l.Token)},
		{"POST", "/v1/locks/before/release", tokenBody(l.Token)},
		{"POST", "/v1/locks/before/check", `{"fence":1}`},
		{"GET", "/v1/locks/before", ""},
		{"GET", "/v1/locks", ""},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp := call(t, ctx, rq.method, r.url+rq.path, rq.body)
		cancel()
		if resp.status != http.StatusServiceUnavailable || resp.errorCode() != "unavailable" ||
			resp.header.Get("Retry-After") == "" || strings.Contains(string(resp.body), c.srv.Addr) {
			t.Errorf("%s %s: %d %s", rq.method, rq.path, resp.status, resp.body)
		}
	}
}
