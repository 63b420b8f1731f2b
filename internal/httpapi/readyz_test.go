package httpapi

import (
	"net/http"
	"strings"
	"testing"
)

// TestReadyzExcludeRedis: /readyz?exclude=redis, Kubernetes' readinessProbe,
// ignores a stopped Redis that plain /readyz reports, still fails while the
// replica drains, and refuses to leave out a check that does not exist.
// Every answer is checked against doc/openapi.yaml by the client.
func TestReadyzExcludeRedis(t *testing.T) {
	t.Parallel()
	draining := make(chan struct{})
	c := startCluster(t, 1, Options{Draining: draining})
	url := c.replicas[0].url + "/readyz"

	readyz := func(query string, wantStatus int, wantReason string) readyJSON {
		t.Helper()
		resp := get(t, url+query)
		var body readyJSON
		resp.json(t, &body)
		if resp.status != wantStatus || body.Reason != wantReason {
			t.Errorf("GET /readyz%s: %d %s, want %d reason %q", query, resp.status, resp.body, wantStatus, wantReason)
		}
		if wantStatus == http.StatusServiceUnavailable && resp.header.Get("Retry-After") == "" {
			t.Errorf("GET /readyz%s: 503 without Retry-After", query)
		}
		return body
	}

	readyz("", http.StatusOK, "")
	readyz("?exclude=redis", http.StatusOK, "")

	c.srv.Stop()
	if body := readyz("?verbose", http.StatusServiceUnavailable, "redis"); len(body.Nodes) != 1 || body.Nodes[0].OK {
		t.Errorf("with Redis stopped, nodes %+v, want the one node down", body.Nodes)
	}
	// Redis is not asked at all: no node is reported, even to a caller
	// allowed the details.
	if body := readyz("?exclude=redis&verbose", http.StatusOK, ""); body.Status != "ready" || len(body.Nodes) != 0 {
		t.Errorf("exclude=redis with Redis stopped: %+v, want ready and no nodes", body)
	}
	readyz("?exclude=redis&exclude=redis", http.StatusOK, "")

	for _, query := range []string{"?exclude=etcd", "?exclude=", "?exclude", "?exclude=Redis", "?exclude=redis&exclude=etcd",
		"?exclude=" + strings.Repeat("x", 100)} {
		resp := get(t, url+query)
		if resp.status != http.StatusBadRequest || resp.errorCode() != "invalid_argument" || len(resp.body) > 200 {
			t.Errorf("GET /readyz%s: %d %s, want a short 400 invalid_argument", query, resp.status, resp.body)
		}
	}

	close(draining)
	readyz("?exclude=redis", http.StatusServiceUnavailable, "shutting_down")
	readyz("", http.StatusServiceUnavailable, "shutting_down")
}
