package apitest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// These tests aim the checker at hand-written answers, right and wrong, to
// show it catches what it should. They say nothing of lockd's behaviour.

func TestDocumentIsValid(t *testing.T) {
	root, err := redistest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(filepath.Join(root, SpecPath))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if doc.Info.Version != "1.0.0" {
		t.Errorf("info.version = %q, want 1.0.0", doc.Info.Version)
	}
}

// recorder stands in for the test given to Transport, so that a reported
// mismatch can be looked at instead of failing the test. Everything else,
// Fatalf and Cleanup included, goes to the real test.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) reported() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errors
}

const (
	lease = `{"name":"orders","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T03:04:05.678Z"}`
	leaseWithoutFence = `{"name":"orders","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T03:04:05.678Z"}`
	leaseInLocalTime = `{"name":"orders","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T04:04:05.678+01:00"}`
	leaseWithExtra = `{"name":"orders","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T03:04:05.678Z","extra":1}`
	leaseAfterWait = `{"name":"orders","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":1500,"expires_at":"2026-01-02T03:04:05.678Z"}`
	locked = `{"error":{"code":"locked","message":"held by someone else"},` +
		`"holder":{"owner":"worker-2","fence":16,"ttl_ms":2500}}`
	lockedWithoutHolder = `{"error":{"code":"locked","message":"held by someone else"}}`
	notFound            = `{"error":{"code":"not_found","message":"no such route: /nope"}}`
	notFoundWrongCode   = `{"error":{"code":"internal","message":"no such route: /nope"}}`
	methodNotAllowed    = `{"error":{"code":"method_not_allowed","message":"DELETE is not allowed"}}`
	demoPanic           = `{"error":{"code":"internal","message":"internal error"}}`
	heldLock            = `{"name":"orders","held":true,"owner":"worker-1","fence":17,"ttl_ms":2500}`
	freeLock            = `{"name":"orders","held":false,"owner":"","fence":0,"ttl_ms":0}`
	freeLockWithFence   = `{"name":"orders","held":false,"owner":"","fence":17,"ttl_ms":0}`
	// Demo locks are listed too, and their names need not be /v1 names.
	list = `{"locks":[{"name":"order 42","owner":"","fence":0,"ttl_ms":900},` +
		`{"name":"orders","owner":"worker-1","fence":17,"ttl_ms":2500}],"next_cursor":""}`
)

func TestTransportChecksResponses(t *testing.T) {
	retryAfter := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	tests := []struct {
		name    string
		method  string
		path    string
		status  int
		header  http.Header
		body    string
		wantErr bool
	}{
		{"lease", "POST", "/v1/locks/orders/acquire", 200, nil, lease, false},
		{"lease after a wait", "POST", "/v1/locks/orders/acquire", 200, nil, leaseAfterWait, false},
		{"lease without fence", "POST", "/v1/locks/orders/acquire", 200, nil, leaseWithoutFence, true},
		{"lease with an unknown field", "POST", "/v1/locks/orders/acquire", 200, nil, leaseWithExtra, true},
		{"expiry not in UTC", "POST", "/v1/locks/orders/acquire", 200, nil, leaseInLocalTime, true},
		{"extend that waited", "POST", "/v1/locks/orders/extend", 200, nil, leaseAfterWait, true},
		{"locked", "POST", "/v1/locks/orders/acquire", 409, retryAfter("3"), locked, false},
		{"locked without holder", "POST", "/v1/locks/orders/acquire", 409, retryAfter("3"), lockedWithoutHolder, true},
		{"locked without Retry-After", "POST", "/v1/locks/orders/acquire", 409, nil, locked, true},
		{"locked with Retry-After 0", "POST", "/v1/locks/orders/acquire", 409, retryAfter("0"), locked, true},
		{"locked where not_holder is due", "POST", "/v1/locks/orders/release", 409, retryAfter("3"), locked, true},
		{"undocumented status", "POST", "/v1/locks/orders/acquire", 418, nil, notFound, true},
		{"release", "POST", "/v1/locks/orders/release", 204, nil, "", false},
		{"held lock", "GET", "/v1/locks/orders", 200, nil, heldLock, false},
		{"free lock", "GET", "/v1/locks/orders", 200, nil, freeLock, false},
		{"free lock with a fence", "GET", "/v1/locks/orders", 200, nil, freeLockWithFence, true},
		{"list", "GET", "/v1/locks?limit=2", 200, nil, list, false},
		{"redirect", "GET", "/v1/locks/orders", 301, http.Header{"Location": {"/v1/locks"}}, "", true},
		{"unknown route", "GET", "/nope", 404, nil, notFound, false},
		{"unknown route, wrong shape", "GET", "/nope", 404, nil, `{"message":"not found"}`, true},
		{"unknown route, wrong code", "GET", "/nope", 404, nil, notFoundWrongCode, true},
		{"unknown route answered 200", "GET", "/nope", 200, nil, notFound, true},
		{"unknown method", "DELETE", "/v1/locks/orders", 405, nil, methodNotAllowed, false},
		{"demo panic", "GET", "/lock?resource_id=a", 500, nil, demoPanic, false},
		{"demo failure", "GET", "/lock?resource_id=a", 500, nil, `{"error":"Failed to acquire lock","details":"taken"}`, false},
		{"demo failure without details", "GET", "/lock?resource_id=a", 500, nil, `{"error":"Failed to acquire lock"}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header()[k] = v
				}
				if tc.body != "" {
					w.Header().Set("Content-Type", "application/json; charset=utf-8")
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()

			rec := &recorder{TB: t}
			req, err := http.NewRequestWithContext(t.Context(), tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := Client(rec).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tc.body {
				t.Errorf("caller read body %q, want %q", body, tc.body)
			}

			got := rec.reported()
			if tc.wantErr != (len(got) > 0) {
				t.Fatalf("reported %q, want a report: %v", got, tc.wantErr)
			}
			// A report must say which exchange broke the contract.
			for _, msg := range got {
				for _, want := range []string{tc.method, tc.path, strconv.Itoa(tc.status), tc.body} {
					if !strings.Contains(msg, want) {
						t.Errorf("report %q does not mention %q", msg, want)
					}
				}
			}
		})
	}
}
