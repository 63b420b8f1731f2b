package httpapi

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshot, when set, is where TestDashboardInBrowser saves a PNG of the
// page during the README scenario: make dashboard-screenshot.
var screenshot = flag.String("dashboard.screenshot", "", "save a screenshot of the dashboard to this PNG `file`")

func TestDashboardServed(t *testing.T) {
	t.Parallel()
	c := startClusterWith(t, 2, clusterOptions{Peers: true})
	a, b := c.replicas[0], c.replicas[1]
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(method, url string, header http.Header) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}

	if resp, _ := fetch("GET", a.url+"/", nil); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("GET /: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for path, want := range map[string]string{"/ui/": "text/html", "/ui/app.js": "text/javascript", "/ui/style.css": "text/css", "/ui/config.json": "application/json"} {
		resp, body := fetch("GET", a.url+path, nil)
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, want) || body == "" {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, ct)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' "+b.url) {
			t.Errorf("GET %s: CSP %q does not let the page reach its peer", path, csp)
		}
	}
	if _, body := fetch("GET", a.url+"/ui/config.json", nil); body != `{"replica":"replica-0","peers":["`+b.url+`"],"auth":false}` {
		t.Errorf("config.json: %s", body)
	}

	// CORS: the peer's origin, and only it, may call /lock and /v1.
	preflight := http.Header{"Origin": {b.url}, "Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"authorization,content-type"}}
	resp, _ := fetch("OPTIONS", a.url+"/v1/locks/x/release", preflight)
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != b.url ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight from the peer: %d %v", resp.StatusCode, resp.Header)
	}
	preflight.Set("Origin", "http://evil.example")
	if resp, _ := fetch("OPTIONS", a.url+"/v1/locks/x/release", preflight); resp.StatusCode == http.StatusNoContent ||
		resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("preflight from another origin: %d %v", resp.StatusCode, resp.Header)
	}
	for _, path := range []string{"/v1/locks", "/lock"} {
		if resp, _ := fetch("GET", a.url+path, http.Header{"Origin": {b.url}}); resp.Header.Get("Access-Control-Allow-Origin") != b.url {
			t.Errorf("GET %s from the peer: no CORS header", path)
		}
	}
	if resp, _ := fetch("GET", a.url+"/readyz", http.Header{"Origin": {b.url}}); resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("GET /readyz answers CORS; only /lock and /v1 should")
	}
}

// chromium finds Debian's chromium (or Chrome). Without one the test fails
// in CI and is skipped, loudly, elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	msg := "no chromium on PATH; install it with: apt-get install -y chromium"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPED browser test: " + msg)
	return ""
}

// browser is a headless Chromium tab, with the console problems it
// reported: errors, uncaught exceptions and the browser's own error log.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// browsers lets one browser run at a time: the README scenario's timing
// does not survive two Chromiums on a small, busy machine.
var browsers = make(chan struct{}, 1)

// startBrowser starts Chromium at the given window size, once no other
// test's is running; t.Cleanup stops it.
func startBrowser(t *testing.T, width, height int) *browser {
	t.Helper()
	exe := chromium(t)
	browsers <- struct{}{}
	t.Cleanup(func() { <-browsers })
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(width, height))...)
	ctx, cancel := chromedp.NewContext(alloc)
	b := &browser{t: t, ctx: ctx}
	// The first call starts the browser, and must not have a timeout of
	// its own: it would stop the browser.
	if err := chromedp.Do(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start %s: %v", exe, err)
	}
	messages := chromedp.Console(ctx)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		for m, err := range messages {
			if err != nil {
				return
			}
			// The browser logs every error status under "network"; the
			// scenario's 500 is expected, and the page reports it itself.
			if (m.Type == chromedp.ConsoleError && m.Source != "network") || m.IsException() {
				b.mu.Lock()
				b.problems = append(b.problems, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-listening; cancelAlloc() })
	return b
}

// run does actions within timeout, and fails the test with the page's text
// when they do not succeed.
func (b *browser) run(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		text, _ := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("body")))
		b.t.Fatalf("%s: %v\npage:\n%s", what, err, text)
	}
}

// checkConsole fails the test if the browser reported a problem.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Errorf("the browser reported:\n%s", strings.Join(b.problems, "\n"))
	}
}

// tableRow is one holder's row of the dashboard's table as the page shows
// it, with the cells its name's first row spans over it.
type tableRow struct {
	Name, Fence, Kind, Owner, Mode, Replica, Queue, Delay string
}

// readTable is the page's table, row by row.
const readTable = `(() => {
  const out = [];
  let first = null;
  for (const tr of document.querySelectorAll("#locks tbody tr")) {
    if (tr.classList.contains("first")) first = tr;
    const cell = (c) => (tr.querySelector("td." + c) || first.querySelector("td." + c) || {}).textContent || "";
    out.push({Name: tr.dataset.name, Fence: tr.dataset.fence, Kind: cell("kind"), Owner: cell("owner"),
      Mode: cell("mode"), Replica: cell("replica"), Queue: cell("queue"), Delay: cell("delay")});
  }
  return out;
})()`

// waitRows waits until the rows of name satisfy ok, and fails the test
// with what the page showed last when they do not within timeout.
func (b *browser) waitRows(what, name string, timeout time.Duration, ok func([]tableRow) bool) []tableRow {
	b.t.Helper()
	var rows []tableRow
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		all, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]tableRow](readTable))
		if err != nil {
			b.t.Fatalf("%s: reading the table: %v", what, err)
		}
		rows = rows[:0]
		for _, r := range all {
			if r.Name == name {
				rows = append(rows, r)
			}
		}
		if ok(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: within %v, the rows of %s were %+v", what, timeout, name, rows)
		}
	}
}

// TestDashboardInBrowser drives the page in headless Chromium: a lock taken
// through the other replica appears with its fence and goes on release, the
// README scenario shows its 500 and its 200, and the console stays clean.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	// The second demo request must run out of retries (about 4.5 s, longer
	// on a busy machine) while the first still holds the lock.
	c := startClusterWith(t, 2, clusterOptions{Peers: true,
		Options: Options{LockExpiry: 2 * time.Second, CriticalSection: 9 * time.Second}})
	a, b := c.replicas[0], c.replicas[1]
	br := startBrowser(t, 1280, 900)
	br.run("open the page", 15*time.Second, chromedp.Navigate(a.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#stream-state.ok")))

	l := b.acquire(t, "ui-job", `{"ttl":"30s","owner":"carol"}`)
	br.waitRows("the lock taken on the other replica appears within a second, granted by it", "ui-job", time.Second,
		func(rows []tableRow) bool {
			return len(rows) == 1 && rows[0].Fence == fmt.Sprint(l.Fence) && rows[0].Owner == "carol" && rows[0].Replica == "replica-1"
		})
	post(t, a.url+"/v1/locks/ui-job/release", tokenBody(l.Token))
	br.waitRows("the released lock disappears", "ui-job", 2*time.Second, func(rows []tableRow) bool { return len(rows) == 0 })

	// Leases that stay, for the screenshot's sake: a lock, a shared lock's
	// two readers and a semaphore's two permits.
	b.acquire(t, "report", `{"ttl":"60s","owner":"alice"}`)
	b.acquire(t, "catalog", `{"ttl":"60s","owner":"reader-1","mode":"shared"}`)
	a.acquire(t, "catalog", `{"ttl":"60s","owner":"reader-2","mode":"shared"}`)
	for _, owner := range []string{"worker-1", "worker-2"} {
		acquireSemaphore(t, a, "encoders", `{"limit":3,"ttl":"60s","owner":"`+owner+`"}`)
	}
	// bob waits in report's fair queue until the test ends, and nightly
	// stays closed for a minute after its lease expired.
	ctx, cancel := context.WithCancel(context.Background())
	queued := make(chan struct{})
	go func() {
		defer close(queued)
		call(t, ctx, http.MethodPost, b.url+"/v1/locks/report/acquire", `{"ttl":"60s","wait":"60s","owner":"bob","fair":true}`)
	}()
	defer func() { cancel(); <-queued }()
	a.acquire(t, "nightly", `{"ttl":"3s","owner":"cron","lock_delay":"60s"}`)
	br.run("run the README scenario", 15*time.Second,
		chromedp.Click(chromedp.CSS("#run-scenario")),
		chromedp.WaitVisible(chromedp.CSS(`#timeline li[data-type="contended"][data-status="500"]`)))
	if *screenshot != "" {
		sctx, scancel := context.WithTimeout(br.ctx, 10*time.Second)
		png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		scancel()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(*screenshot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", *screenshot)
	}
	br.run("the first demo request ends with 200", 12*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`#timeline li[data-type="released"][data-status="200"][data-name="my-test-key"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#demo-log li[data-status="200"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#demo-log li[data-status="500"]`)))

	// Phone width: nothing wider than the screen (the table scrolls inside
	// its section).
	br.run("phone width", 5*time.Second, chromedp.EmulateViewport(390, 844))
	if overflow, err := chromedp.Run(br.ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`)); err != nil || overflow {
		t.Errorf("the page is wider than a 390 px screen (%v)", err)
	}
	br.checkConsole()
}

// grantJSON is the part of a lease answer these tests use.
type grantJSON struct {
	Token string `json:"token"`
	Fence int64  `json:"fence"`
}

// acquireSemaphore takes a permit of name on r and fails the test unless
// it is granted.
func acquireSemaphore(t testing.TB, r *replica, name, body string) grantJSON {
	t.Helper()
	resp := post(t, r.url+"/v1/semaphores/"+name+"/acquire", body)
	var g grantJSON
	if err := json.Unmarshal(resp.body, &g); resp.status != http.StatusOK || err != nil {
		t.Fatalf("acquire semaphore %s: %d %s", name, resp.status, resp.body)
	}
	return g
}

// TestDashboardKinds: the page shows every holder of a semaphore and of a
// shared lock with the limit or the mode, a fair queue's length as waiters
// join it and are granted, and a lock-delay in force after a lease with one
// expired.
func TestDashboardKinds(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]
	br := startBrowser(t, 1280, 900)
	br.run("open the page", 15*time.Second, chromedp.Navigate(a.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#stream-state.ok")))

	// A semaphore: one row per permit, each with the limit.
	p1 := acquireSemaphore(t, a, "ui-pool", `{"limit":3,"ttl":"30s","owner":"p1"}`)
	p2 := acquireSemaphore(t, b, "ui-pool", `{"limit":3,"ttl":"30s","owner":"p2"}`)
	br.waitRows("the semaphore's two holders", "ui-pool", 2*time.Second, func(rows []tableRow) bool {
		return len(rows) == 2 && rows[0].Fence == fmt.Sprint(p1.Fence) && rows[1].Fence == fmt.Sprint(p2.Fence) &&
			rows[0].Owner == "p1" && rows[1].Owner == "p2" && rows[1].Replica == "replica-1" &&
			rows[0].Kind == "semaphore" && rows[0].Mode == "limit 3" && rows[1].Mode == "limit 3" && rows[0].Queue == "0"
	})
	post(t, a.url+"/v1/semaphores/ui-pool/release", tokenBody(p1.Token))
	br.waitRows("a released permit goes, the other stays", "ui-pool", 2*time.Second, func(rows []tableRow) bool {
		return len(rows) == 1 && rows[0].Owner == "p2" && rows[0].Mode == "limit 3"
	})

	// A shared lock: every reader, in shared mode.
	b.acquire(t, "ui-read", `{"ttl":"30s","owner":"r1","mode":"shared"}`)
	a.acquire(t, "ui-read", `{"ttl":"30s","owner":"r2","mode":"shared"}`)
	br.waitRows("the shared lock's two holders", "ui-read", 2*time.Second, func(rows []tableRow) bool {
		return len(rows) == 2 && rows[0].Owner == "r1" && rows[1].Owner == "r2" &&
			rows[0].Kind == "lock" && rows[0].Mode == "shared" && rows[1].Mode == "shared"
	})
	w := a.acquire(t, "ui-write", `{"ttl":"30s","owner":"w"}`)
	br.waitRows("an exclusive lock", "ui-write", 2*time.Second, func(rows []tableRow) bool {
		return len(rows) == 1 && rows[0].Owner == "w" && rows[0].Mode == "exclusive" && rows[0].Fence == fmt.Sprint(w.Fence)
	})

	// A fair queue: the waiter is counted while it waits, then holds.
	holder := a.acquire(t, "ui-fair", `{"ttl":"30s","owner":"first"}`)
	waited := make(chan response, 1)
	go func() {
		waited <- post(t, b.url+"/v1/locks/ui-fair/acquire", `{"ttl":"30s","wait":"20s","owner":"second","fair":true}`)
	}()
	br.waitRows("the fair waiter in the queue", "ui-fair", 2*time.Second, func(rows []tableRow) bool {
		return len(rows) == 1 && rows[0].Owner == "first" && rows[0].Queue == "1"
	})
	post(t, a.url+"/v1/locks/ui-fair/release", tokenBody(holder.Token))
	var second grantJSON
	select {
	case resp := <-waited:
		if err := json.Unmarshal(resp.body, &second); resp.status != http.StatusOK || err != nil {
			t.Fatalf("fair waiter: %d %s", resp.status, resp.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the fair waiter was not granted after the release")
	}
	br.waitRows("the queue's grant", "ui-fair", 2*time.Second, func(rows []tableRow) bool {
		return len(rows) == 1 && rows[0].Owner == "second" && rows[0].Fence == fmt.Sprint(second.Fence) && rows[0].Queue == "0"
	})

	// A lock-delay: the lease expires unreleased, and the name stays shown,
	// with no holder, until the delay ends.
	// (Not shorter: a TTL bounds how long Redis may take to answer, a
	// tenth of it and at least 100 ms, which a busy machine can exceed.)
	a.acquire(t, "ui-delay", `{"ttl":"3s","owner":"crashed","lock_delay":"5s"}`)
	rows := br.waitRows("the lock-delay in force", "ui-delay", 7*time.Second, func(rows []tableRow) bool {
		return len(rows) == 1 && rows[0].Fence == "" && strings.HasPrefix(rows[0].Delay, "until ")
	})
	if resp := post(t, b.url+"/v1/locks/ui-delay/acquire", `{"owner":"next"}`); resp.errorCode() != "lock_delay" {
		t.Errorf("acquire during the delay the page shows (%s): %d %s", rows[0].Delay, resp.status, resp.body)
	}
	br.waitRows("the name goes when the delay ends", "ui-delay", 7*time.Second, func(rows []tableRow) bool { return len(rows) == 0 })
	br.checkConsole()
}
