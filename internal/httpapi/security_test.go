package httpapi

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// demoOptions make GET /lock answer at once: its critical section is short.
var demoOptions = Options{LockExpiry: 30 * time.Second, CriticalSection: 10 * time.Millisecond}

// exists says whether lock:name is in Redis.
func exists(t *testing.T, c *cluster, name string) bool {
	t.Helper()
	n, err := c.rdb.Exists(context.Background(), lock.KeyPrefix+name).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// TestDemoDisabled: DEMO_ENABLED=false removes GET /lock; the documented
// 404 answers it and no key is taken.
func TestDemoDisabled(t *testing.T) {
	t.Parallel()
	opts := demoOptions
	opts.DemoDisabled = true
	c := startCluster(t, 1, opts)
	resp := get(t, c.replicas[0].url+"/lock?resource_id=gone")
	if resp.status != http.StatusNotFound || resp.errorCode() != "not_found" {
		t.Errorf("GET /lock: got %d %s, want 404 not_found", resp.status, resp.body)
	}
	if exists(t, c, "gone") {
		t.Error("lock:gone was taken")
	}
}

// TestDemoCountsTowardMaxWaiters: with MAX_WAITERS=1, a /v1 waiter leaves
// no room for a demo request (429, nothing taken), and a retrying demo
// request none for a /v1 waiter.
func TestDemoCountsTowardMaxWaiters(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, 1, clusterOptions{Options: demoOptions, MaxWaiters: 1})
	r := c.replicas[0]
	held := r.acquire(t, "held", `{"ttl":"1m"}`)
	ctx := context.Background()

	// A /v1 waiter takes the one slot.
	wctx, cancelWaiter := context.WithCancel(ctx)
	waited := make(chan response, 1)
	go func() { waited <- call(t, wctx, "POST", r.url+"/v1/locks/held/acquire", `{"wait":"1m"}`) }()
	for deadline := time.Now().Add(5 * time.Second); r.locks.Waiting() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the /v1 waiter never started waiting")
		}
	}
	resp := get(t, r.url+"/lock?resource_id=demo-free")
	if resp.status != http.StatusTooManyRequests || resp.header.Get("Retry-After") == "" ||
		!strings.Contains(string(resp.body), `"error":"Too many waiting requests"`) {
		t.Errorf("GET /lock beside a waiter: got %d %s, want 429", resp.status, resp.body)
	}
	if exists(t, c, "demo-free") {
		t.Error("the refused demo request took lock:demo-free")
	}
	cancelWaiter()
	<-waited
	waitSlotFree(t, r)

	// A demo request retrying on the held lock takes the slot: a /v1
	// waiter is refused until it ends. The demo request itself may find
	// the slot taken, by the waiter above still leaving or by a probe:
	// then it is sent again.
	dctx, cancelDemo := context.WithCancel(ctx)
	demo := make(chan response, 1)
	sendDemo := func() { go func() { demo <- call(t, dctx, "GET", r.url+"/lock?resource_id=held", "") }() }
	sendDemo()
	refused := false
	for deadline := time.Now().Add(10 * time.Second); !refused && time.Now().Before(deadline); {
		select {
		case dr := <-demo:
			if dr.status != http.StatusTooManyRequests {
				t.Fatalf("demo request: %d %s, want it retrying or 429", dr.status, dr.body)
			}
			sendDemo()
		default:
		}
		resp := post(t, r.url+"/v1/locks/probe/acquire", `{"wait":"1ms"}`)
		switch resp.status {
		case http.StatusTooManyRequests:
			refused = resp.errorCode() == "too_many_requests"
		case http.StatusOK: // the demo request was not retrying yet
			var l leaseJSON
			resp.json(t, &l)
			post(t, r.url+"/v1/locks/probe/release", tokenBody(l.Token))
		default:
			t.Fatalf("probe: %d %s", resp.status, resp.body)
		}
	}
	cancelDemo()
	<-demo
	if !refused {
		t.Error("a /v1 wait was never refused while a demo request retried")
	}
	// The slot is free again once the demo request is gone.
	waitSlotFree(t, r)
	if got := r.inspect(t, "held"); got.Fence != held.Fence {
		t.Errorf("the held lock changed: %+v", got)
	}
}

// waitSlotFree returns once a /v1 wait is let in on r (a probe lock is
// taken and given back): the requests that held the waiter slots have left.
func waitSlotFree(t *testing.T, r *replica) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		resp := post(t, r.url+"/v1/locks/probe/acquire", `{"wait":"1ms"}`)
		if resp.status == http.StatusOK {
			var l leaseJSON
			resp.json(t, &l)
			post(t, r.url+"/v1/locks/probe/release", tokenBody(l.Token))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waiter slot was never given back: %d %s", resp.status, resp.body)
		}
	}
}

// TestCrossOriginRequestsChangeNothing: a page of another site cannot make
// a browser take a lock, by a text/plain POST (no preflight) or by GET
// /lock; the peers of UI_PEERS can, and so can curl.
func TestCrossOriginRequestsChangeNothing(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, 2, clusterOptions{Options: demoOptions, Peers: true})
	r, peer := c.replicas[0], c.replicas[1].url
	ctx := context.Background()
	text := "text/plain;charset=UTF-8"
	for _, tc := range []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
	}{
		{"cross-site text/plain POST", "POST", "/v1/locks/x1/acquire", `{"ttl":"1h"}`,
			http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}, "Content-Type": {text}}, 403},
		{"old browser: Origin of another site", "POST", "/v1/locks/x2/acquire", `{"ttl":"1h"}`,
			http.Header{"Origin": {"https://evil.example"}, "Content-Type": {text}}, 403},
		{"same-site, another origin", "POST", "/v1/locks/x3/acquire", ``,
			http.Header{"Sec-Fetch-Site": {"same-site"}, "Origin": {"http://127.0.0.1:1"}}, 403},
		{"cross-site GET /lock (a link or an img)", "GET", "/lock?resource_id=x4", ``,
			http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
		{"old browser: GET /lock with Origin of another site", "GET", "/lock?resource_id=x5", ``,
			http.Header{"Origin": {"https://evil.example"}}, 403},
		{"cross-site release", "POST", "/v1/locks/x6/release", `{"token":"t"}`,
			http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
		{"peer's dashboard POST", "POST", "/v1/locks/ok1/acquire", `{"ttl":"1m"}`,
			http.Header{"Sec-Fetch-Site": {"same-site"}, "Origin": {peer}, "Content-Type": {"application/json"}}, 200},
		{"peer's dashboard GET /lock", "GET", "/lock?resource_id=ok2", ``,
			http.Header{"Sec-Fetch-Site": {"same-site"}, "Origin": {peer}}, 200},
		{"own dashboard POST", "POST", "/v1/locks/ok3/acquire", `{"ttl":"1m"}`,
			http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {r.url}}, 200},
		{"address bar GET /lock", "GET", "/lock?resource_id=ok4", ``,
			http.Header{"Sec-Fetch-Site": {"none"}}, 200},
		{"curl POST", "POST", "/v1/locks/ok5/acquire", `{"ttl":"1m"}`,
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, 200},
		{"curl GET /lock", "GET", "/lock?resource_id=ok6", ``, nil, 200},
		{"cross-site GET of a listing (safe, CORS guards reading)", "GET", "/v1/locks", ``,
			http.Header{"Sec-Fetch-Site": {"cross-site"}}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := callWith(t, ctx, tc.method, r.url+tc.path, tc.body, tc.header)
			if resp.status != tc.status {
				t.Fatalf("got %d %s, want %d", resp.status, resp.body, tc.status)
			}
			if tc.status == http.StatusForbidden && resp.errorCode() != "cross_origin" {
				t.Errorf("got %s, want code cross_origin", resp.body)
			}
		})
	}
	k := keys(t, c)
	for _, name := range []string{"x1", "x2", "x3", "x4", "x5"} {
		if slices.Contains(k, lock.KeyPrefix+name) {
			t.Errorf("a refused request took lock:%s", name)
		}
	}
	for _, name := range []string{"ok1", "ok3", "ok5"} {
		if !slices.Contains(k, lock.KeyPrefix+name) {
			t.Errorf("lock:%s was not taken; keys %v", name, k)
		}
	}
}

// TestReadyzDetailRule: anyone gets the status and a one-word reason; the
// Redis addresses and errors need ?verbose and a local client (no tokens)
// or a valid token (tokens set).
func TestReadyzDetailRule(t *testing.T) {
	t.Parallel()
	open := startCluster(t, 1, Options{})
	guarded := startCluster(t, 1, Options{APITokens: []string{apiToken}})
	good := bearerHeader("Bearer " + apiToken)
	ctx := context.Background()
	check := func(t *testing.T, c *cluster, query string, header http.Header, wantStatus int, wantDetail bool) {
		t.Helper()
		resp := callWith(t, ctx, "GET", c.replicas[0].url+"/readyz"+query, "", header)
		var body readyJSON
		resp.json(t, &body)
		if resp.status != wantStatus {
			t.Fatalf("/readyz%s: got %d %s, want %d", query, resp.status, resp.body, wantStatus)
		}
		shown := len(body.Nodes) > 0 || strings.Contains(string(resp.body), c.srv.Addr)
		if shown != wantDetail {
			t.Errorf("/readyz%s %v: got %s, want details %v", query, header, resp.body, wantDetail)
		}
		if wantStatus == http.StatusServiceUnavailable && body.Reason != "redis" {
			t.Errorf("/readyz%s: reason %q, want redis", query, body.Reason)
		}
		if !wantDetail && (body.Detail != "" || strings.Contains(string(resp.body), "127.0.0.1")) {
			t.Errorf("/readyz%s: %s shows an address or an error", query, resp.body)
		}
	}
	forwarded := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
	for _, c := range []*cluster{open, guarded} {
		check(t, c, "", nil, 200, false)
		check(t, c, "", good, 200, false)
	}
	check(t, open, "?verbose", nil, 200, true)
	check(t, open, "?verbose", forwarded, 200, false)
	check(t, guarded, "?verbose", nil, 200, false)
	check(t, guarded, "?verbose", bearerHeader("Bearer wrong-token-00000000000"), 200, false)
	check(t, guarded, "?verbose", good, 200, true)

	// Redis down: the error text (connection refused, the address) only
	// with the details.
	open.srv.Stop()
	guarded.srv.Stop()
	check(t, open, "", nil, 503, false)
	check(t, open, "?verbose", forwarded, 503, false)
	check(t, open, "?verbose", nil, 503, true)
	check(t, guarded, "?verbose", nil, 503, false)
	check(t, guarded, "?verbose", good, 503, true)
}

// TestUIConfigNeedsTokenForPeers: with API_TOKENS set, config.json names
// no peer (nor the replica) without a valid token, and the page's policy
// does not either; with one, the page gets what it needs.
func TestUIConfigNeedsTokenForPeers(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, 2, clusterOptions{Options: Options{APITokens: []string{apiToken}}, Peers: true})
	r, peer := c.replicas[0], c.replicas[1].url
	// The dashboard is not part of the API contract: a plain client.
	fetch := func(path, auth string) (http.Header, string) {
		t.Helper()
		req, err := http.NewRequest("GET", r.url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return resp.Header, string(b)
	}
	for _, auth := range []string{"", "Bearer wrong-token-00000000000"} {
		if _, body := fetch("/ui/config.json", auth); body != `{"replica":"","peers":[],"auth":true}` {
			t.Errorf("config.json with %q: got %s, want no replica and no peers", auth, body)
		}
	}
	if _, body := fetch("/ui/config.json", "Bearer "+apiToken); body != `{"replica":"replica-0","peers":["`+peer+`"],"auth":true}` {
		t.Errorf("config.json with the token: got %s, want the replica and its peer", body)
	}
	h, _ := fetch("/ui/", "")
	if csp := h.Get("Content-Security-Policy"); strings.Contains(csp, peer) || !strings.Contains(csp, "connect-src 'self' http:;") {
		t.Errorf("the page's policy %q names a peer, or does not let the page reach them", csp)
	}
}

// TestStrictBodies: what encoding/json lets through and a lock API must
// not is 400 invalid_argument naming the field, in plain words, and
// changes nothing in Redis.
func TestStrictBodies(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, Options{})
	r := c.replicas[0]
	held := r.acquire(t, "held", `{"ttl":"1m","owner":"keeper"}`)
	ctx := context.Background()
	keysBefore := keys(t, c)
	for _, tc := range []struct {
		name, path, body, contentType string
		want                          string
	}{
		{"duplicate key", "/v1/locks/n/acquire", `{"ttl":"5s","ttl":"1h"}`, "",
			`field "ttl" appears more than once`},
		{"duplicate token", "/v1/locks/held/release", `{"token":"x","token":"` + held.Token + `"}`, "",
			`field "token" appears more than once`},
		{"wrong-case field", "/v1/locks/n/acquire", `{"TTL":"1h"}`, "",
			`field "TTL" is not known; field names are case-sensitive: did you mean "ttl"?`},
		{"wrong-case token", "/v1/locks/held/release", `{"Token":"` + held.Token + `"}`, "",
			`did you mean "token"?`},
		{"null body on acquire", "/v1/locks/n/acquire", `null`, "application/json",
			`the body must be a JSON object with the fields fair, lock_delay, mode, owner, ttl, wait, not null`},
		{"null body on release", "/v1/locks/held/release", ` null `, "",
			`the body must be a JSON object with the fields token, not null`},
		{"unknown field", "/v1/locks/n/acquire", `{"ttl":"1s","lease":"1h"}`, "",
			`field "lease" is not known; the fields are fair, lock_delay, mode, owner, ttl, wait`},
		{"charset latin1", "/v1/locks/n/acquire", "{\"owner\":\"caf\xe9\"}", "application/json; charset=latin1",
			`the body must be UTF-8, but its Content-Type says charset="latin1"`},
		{"charset latin1 on valid bytes", "/v1/locks/n/acquire", `{"owner":"ok"}`, "text/plain; charset=ISO-8859-1",
			`charset="ISO-8859-1"`},
		{"invalid UTF-8", "/v1/locks/n/acquire", "{\"owner\":\"caf\xe9\"}", "",
			`the body is not valid UTF-8`},
		{"array body", "/v1/locks/n/acquire", `["30s"]`, "",
			`the body must be a JSON object with the fields fair, lock_delay, mode, owner, ttl, wait, not an array`},
		{"ttl as a number", "/v1/locks/n/acquire", `{"ttl":30}`, "",
			`field "ttl" must be a string, not a JSON number`},
		{"lock_delay as a number", "/v1/locks/n/acquire", `{"lock_delay":5000}`, "",
			`field "lock_delay" must be a string, not a JSON number`},
		{"fair as a string", "/v1/locks/n/acquire", `{"fair":"yes"}`, "",
			`field "fair" must be true or false, not a JSON string`},
		{"bad mode", "/v1/locks/n/acquire", `{"mode":"read"}`, "",
			`mode "read" is neither "exclusive" nor "shared"`},
		{"limit on a lock", "/v1/locks/n/acquire", `{"limit":2}`, "",
			`field "limit" is for semaphores (POST /v1/semaphores/{name}/acquire); a lock takes a mode`},
		{"mode on a semaphore", "/v1/semaphores/n/acquire", `{"limit":2,"mode":"shared"}`, "",
			`field "mode" is for locks (POST /v1/locks/{name}/acquire); a semaphore takes a limit`},
		{"semaphore without limit", "/v1/semaphores/n/acquire", `{}`, "",
			`limit is required: how many may hold the semaphore at once, 1 to 1000`},
		{"semaphore limit 1001", "/v1/semaphores/n/acquire", `{"limit":1001}`, "",
			`limit 1001 is outside 1 to 1000`},
		{"semaphore limit as a string", "/v1/semaphores/n/acquire", `{"limit":"3"}`, "",
			`field "limit" must be a whole number, not a JSON string`},
		{"lock_delay 61s", "/v1/locks/n/acquire", `{"lock_delay":"61s"}`, "",
			`lock_delay 1m1s is outside 0s to 1m0s`},
		{"fence as a string", "/v1/locks/held/check", `{"fence":"1"}`, "",
			`field "fence" must be a whole number, not a JSON string`},
		{"fence 1.5", "/v1/locks/held/check", `{"fence":1.5}`, "",
			`field "fence" must be a whole number; 1.5 is not`},
		{"a character outside ASCII in the JSON", "/v1/locks/n/acquire", `{"owner":é}`, "",
			`unexpected 'é' (U+00E9)`},
		{"owner with U+202E, escaped", "/v1/locks/n/acquire", `{"owner":"abc\u202Etxt.exe"}`, "",
			`owner contains the invisible formatting character U+202E`},
		{"owner with U+2066, raw", "/v1/locks/n/acquire", "{\"owner\":\"a\u2066b\"}", "",
			`owner contains the invisible formatting character U+2066`},
		{"owner with a zero-width space", "/v1/locks/n/acquire", `{"owner":"a\u200Bb"}`, "",
			`owner contains the invisible formatting character U+200B`},
		{"owner with a byte order mark", "/v1/locks/n/acquire", `{"owner":"\uFEFFa"}`, "",
			`owner contains the invisible formatting character U+FEFF`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h http.Header
			if tc.contentType != "" {
				h = http.Header{"Content-Type": {tc.contentType}}
			}
			resp := callWith(t, ctx, "POST", r.url+tc.path, tc.body, h)
			var e errorBody
			resp.json(t, &e)
			if resp.status != http.StatusBadRequest || e.Error.Code != "invalid_argument" || !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("got %d %s, want 400 invalid_argument saying %q", resp.status, resp.body, tc.want)
			}
			for _, leak := range []string{"httpapi", "json:", "Go value", "Ã"} {
				if strings.Contains(e.Error.Message, leak) {
					t.Errorf("message %q shows %q", e.Error.Message, leak)
				}
			}
		})
	}
	if got := r.inspect(t, "held"); got.Owner != "keeper" || got.Fence != held.Fence {
		t.Errorf("the held lock changed: %+v", got)
	}
	if after := keys(t, c); !slices.Equal(after, keysBefore) {
		t.Errorf("keys in Redis went from %v to %v", keysBefore, after)
	}
}

// TestMessagesArePlain: a refused name shows the character as sent, and a
// token that does not hold the lock is told so in the service's words.
func TestMessagesArePlain(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, demoOptions)
	r := c.replicas[0]
	message := func(resp response) string {
		var e errorBody
		resp.json(t, &e)
		return e.Error.Message
	}

	resp := post(t, r.url+"/v1/locks/caf%C3%A9/acquire", "")
	if msg := message(resp); resp.status != 400 || !strings.Contains(msg, `'é' (U+00E9)`) || strings.Contains(msg, "Ã") {
		t.Errorf("café: got %d %q, want it to name 'é' (U+00E9)", resp.status, msg)
	}

	l := r.acquire(t, "mine", `{"ttl":"1m"}`)
	const want = "the token does not hold this lock"
	for _, rq := range []struct{ name, path, body string }{
		{"wrong token on extend", "/v1/locks/mine/extend", tokenBody("wrong-token-000000000000")},
		{"wrong token on release", "/v1/locks/mine/release", tokenBody("wrong-token-000000000000")},
		{"release", "/v1/locks/mine/release", tokenBody(l.Token)},
		{"second release", "/v1/locks/mine/release", tokenBody(l.Token)},
		{"extend after release", "/v1/locks/mine/extend", tokenBody(l.Token)},
	} {
		resp := post(t, r.url+rq.path, rq.body)
		if rq.name == "release" {
			if resp.status != http.StatusNoContent {
				t.Fatalf("release: %d %s", resp.status, resp.body)
			}
			continue
		}
		if msg := message(resp); resp.status != http.StatusConflict || msg != want {
			t.Errorf("%s: got %d %q, want 409 %q", rq.name, resp.status, msg, want)
		}
	}
}
