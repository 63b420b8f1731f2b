package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

// api reaches lockd's /v1 through client/, as any Go program would, with
// one client.Client per replica over a shared keep-alive transport. The
// same transport carries what client/ does not speak: the naive peer,
// etcd's gateway, /metrics, the demo endpoint and /v1/events.
//
// client/ adds a little work of its own to each call (a lease value with
// its expiry timer, a JSON body built by encoding/json): the benchmark
// measures lockd as its callers see it, and that work is theirs too.
type api struct {
	hc *http.Client

	mu      sync.Mutex
	clients map[string]*client.Client // by base URL
}

// newAPI keeps conns idle connections per replica: fewer, and every cycle
// past them would pay a TCP handshake, which is not what is measured.
func newAPI(conns int) *api {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = conns + 8
	// Under lockd's HTTP_IDLE_TIMEOUT (60 s): a connection idle between
	// two repetitions of a cell is not reused just as lockd closes it (a
	// POST that meets that gets "connection reset by peer" and is not
	// retried).
	tr.IdleConnTimeout = 30 * time.Second
	return &api{hc: &http.Client{Transport: tr}, clients: map[string]*client.Client{}}
}

func (a *api) close() { a.hc.CloseIdleConnections() }

// lockd is the client of the replica at base.
func (a *api) lockd(base string) (*client.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.clients[base]; ok {
		return c, nil
	}
	c, err := client.New(base, client.Options{HTTPClient: a.hc})
	if err != nil {
		return nil, err
	}
	a.clients[base] = c
	return c, nil
}

// acquire takes name on the replica at base, waiting up to wait.
func (a *api) acquire(ctx context.Context, base, name string, ttl, wait time.Duration) (*client.Lease, error) {
	c, err := a.lockd(base)
	if err != nil {
		return nil, err
	}
	l, err := c.Acquire(ctx, name, client.AcquireOptions{TTL: ttl, Wait: wait})
	if err != nil {
		return nil, fmt.Errorf("acquire %s: %w", name, err)
	}
	return l, nil
}

// release gives l back through the replica it was taken on.
func release(ctx context.Context, l *client.Lease) error {
	if err := l.Release(ctx); err != nil {
		return fmt.Errorf("release %s: %w", l.Name(), err)
	}
	return nil
}

// do sends one request with a JSON body (none when in is nil) and returns
// the status and the answer.
func (a *api) do(ctx context.Context, method, url string, in any) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, nil, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// metric reads one unlabelled sample from a replica's /metrics, which
// client/ does not read.
func (a *api) metric(ctx context.Context, base, name string) (float64, error) {
	code, b, err := a.do(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("/metrics: %d", code)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			_, err := fmt.Sscan(v, &f)
			return f, err
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

// postJSON posts in (no body when nil) to base plus the path made of
// segments, each escaped, wants the status want, and decodes the answer
// into out unless out is nil. It serves the peers, which are not lockd.
func (a *api) postJSON(ctx context.Context, base string, segments []string, in any, want int, out any) error {
	u := base
	for _, s := range segments {
		u += "/" + url.PathEscape(s)
	}
	code, b, err := a.do(ctx, http.MethodPost, u, in)
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("POST %s: %d %s", u, code, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("POST %s: %w", u, err)
	}
	return nil
}

// v1Lease is what the benchmark keeps of a lease it took through acquireV1:
// enough to release it.
type v1Lease struct {
	base, kind, name, token string
}

// acquireV1 posts body to /v1/{kind}/{name}/acquire on the replica at base
// (kind is "locks" or "semaphores") and wants a lease. It speaks HTTP
// itself, like the peers, because client/ does not yet speak the fields of
// fair waiting and semaphores on this branch; it does what client/ does
// with them, a JSON body in and a lease out.
func (a *api) acquireV1(ctx context.Context, base, kind, name string, body map[string]any) (v1Lease, error) {
	var l struct {
		Token string `json:"token"`
	}
	if err := a.postJSON(ctx, base, []string{"v1", kind, name, "acquire"}, body, http.StatusOK, &l); err != nil {
		return v1Lease{}, fmt.Errorf("acquire %s: %w", name, err)
	}
	return v1Lease{base: base, kind: kind, name: name, token: l.Token}, nil
}

// releaseV1 gives back a lease taken by acquireV1.
func (a *api) releaseV1(ctx context.Context, l v1Lease) error {
	err := a.postJSON(ctx, l.base, []string{"v1", l.kind, l.name, "release"}, map[string]string{"token": l.token}, http.StatusNoContent, nil)
	if err != nil {
		return fmt.Errorf("release %s: %w", l.name, err)
	}
	return nil
}
