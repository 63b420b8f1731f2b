package httpapi

import (
	"context"
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

// TestDashboardInBrowser drives the page in headless Chromium: a lock taken
// through the other replica appears with its fence and goes on release, the
// README scenario shows its 500 and its 200, and the console stays clean.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	exe := chromium(t)
	// The second demo request must run out of retries (about 4.5 s) while
	// the first still holds the lock.
	c := startClusterWith(t, 2, clusterOptions{Peers: true,
		Options: Options{LockExpiry: 2 * time.Second, CriticalSection: 6 * time.Second}})
	a, b := c.replicas[0], c.replicas[1]

	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1280, 900))...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	// The first call starts the browser, and must not have a timeout of
	// its own: it would stop the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v", exe, err)
	}

	// Console errors, uncaught exceptions and the browser's own error log.
	var mu sync.Mutex
	var problems []string
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
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	defer func() { cancel(); <-listening }()

	run := func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		tctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		if err := chromedp.Do(tctx, actions...); err != nil {
			text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("%s: %v\npage:\n%s", what, err, text)
		}
	}
	run("open the page", 15*time.Second, chromedp.Navigate(a.url+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#stream-state.ok")))

	l := b.acquire(t, "ui-job", `{"ttl":"30s","owner":"carol"}`)
	row := fmt.Sprintf(`#locks tr[data-name="ui-job"][data-fence="%d"]`, l.Fence)
	run("the lock taken on the other replica appears within a second", time.Second, chromedp.WaitVisible(chromedp.CSS(row)))
	if granter, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(row+" td:nth-child(5)"))); err != nil || granter != "replica-1" {
		t.Errorf("granted by %q (%v), want replica-1", granter, err)
	}
	post(t, a.url+"/v1/locks/ui-job/release", tokenBody(l.Token))
	run("the released lock disappears", 2*time.Second, chromedp.WaitNotPresent(chromedp.CSS(row)))

	// A lease that stays, for the screenshot's sake.
	b.acquire(t, "report", `{"ttl":"60s","owner":"alice"}`)
	run("run the README scenario", 12*time.Second,
		chromedp.Click(chromedp.CSS("#run-scenario")),
		chromedp.WaitVisible(chromedp.CSS(`#timeline li[data-type="contended"][data-status="500"]`)))
	if *screenshot != "" {
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
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
	run("the first demo request ends with 200", 8*time.Second,
		chromedp.WaitVisible(chromedp.CSS(`#timeline li[data-type="released"][data-status="200"][data-name="my-test-key"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#demo-log li[data-status="200"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#demo-log li[data-status="500"]`)))

	// Phone width: nothing wider than the screen (the table scrolls inside
	// its section).
	run("phone width", 5*time.Second, chromedp.EmulateViewport(390, 844))
	if overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`)); err != nil || overflow {
		t.Errorf("the page is wider than a 390 px screen (%v)", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 {
		t.Errorf("the browser reported:\n%s", strings.Join(problems, "\n"))
	}
}
