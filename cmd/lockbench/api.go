package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// api calls lockd's /v1 over keep-alive connections.
type api struct{ hc *http.Client }

// newAPI keeps conns idle connections per replica: fewer, and every cycle
// past them would pay a TCP handshake, which is not what is measured.
func newAPI(conns int) *api {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 0
	tr.MaxIdleConnsPerHost = conns + 8
	return &api{hc: &http.Client{Transport: tr}}
}

func (a *api) close() { a.hc.CloseIdleConnections() }

func (a *api) do(ctx context.Context, method, url, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
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

type lease struct {
	Token string `json:"token"`
	Fence int64  `json:"fence"`
}

// acquire takes name on the replica at base, waiting up to wait.
func (a *api) acquire(ctx context.Context, base, name string, ttl, wait time.Duration) (lease, error) {
	body := fmt.Sprintf(`{"ttl":%q,"wait":%q}`, ttl, wait)
	code, b, err := a.do(ctx, http.MethodPost, base+"/v1/locks/"+name+"/acquire", body)
	if err != nil {
		return lease{}, err
	}
	if code != http.StatusOK {
		return lease{}, fmt.Errorf("acquire %s: %d %s", name, code, bytes.TrimSpace(b))
	}
	var l lease
	if err := json.Unmarshal(b, &l); err != nil {
		return lease{}, fmt.Errorf("acquire %s: %w", name, err)
	}
	return l, nil
}

func (a *api) release(ctx context.Context, base, name, token string) error {
	code, b, err := a.do(ctx, http.MethodPost, base+"/v1/locks/"+name+"/release", `{"token":"`+token+`"}`)
	if err != nil {
		return err
	}
	if code != http.StatusNoContent {
		return fmt.Errorf("release %s: %d %s", name, code, bytes.TrimSpace(b))
	}
	return nil
}

// metric reads one unlabelled sample from a replica's /metrics.
func (a *api) metric(ctx context.Context, base, name string) (float64, error) {
	code, b, err := a.do(ctx, http.MethodGet, base+"/metrics", "")
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

// postJSON posts body to url, wants the status want, and decodes the answer
// into out unless out is nil.
func (a *api) postJSON(ctx context.Context, url, body string, want int, out any) error {
	code, b, err := a.do(ctx, http.MethodPost, url, body)
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("POST %s: %d %s", url, code, bytes.TrimSpace(b))
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("POST %s: %w", url, err)
	}
	return nil
}
