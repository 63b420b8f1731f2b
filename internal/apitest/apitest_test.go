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
	lease = `{"name":"orders","kind":"lock","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T03:04:05.678Z","mode":"exclusive"}`
	leaseWithoutFence = `{"name":"orders","kind":"lock","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T03:04:05.678Z","mode":"exclusive"}`
	leaseWithoutKind = `{"name":"orders","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T03:04:05.678Z","mode":"exclusive"}`
	leaseInLocalTime = `{"name":"orders","kind":"lock","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T04:04:05.678+01:00","mode":"exclusive"}`
	leaseWithExtra = `{"name":"orders","kind":"lock","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T03:04:05.678Z","mode":"exclusive","extra":1}`
	leaseAfterWait = `{"name":"orders","kind":"lock","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":1500,"expires_at":"2026-01-02T03:04:05.678Z","mode":"shared"}`
	permit = `{"name":"pool","kind":"semaphore","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T03:04:05.678Z","limit":3}`
	permitWithMode = `{"name":"pool","kind":"semaphore","token":"q2Vb3sX9yZ0kLm4nOp5rSt6u","fence":17,"owner":"worker-1",` +
		`"ttl_ms":29990,"waited_ms":0,"expires_at":"2026-01-02T03:04:05.678Z","limit":3,"mode":"shared"}`
	locked = `{"error":{"code":"locked","message":"held by someone else"},` +
		`"holder":{"owner":"worker-2","fence":16,"ttl_ms":2500,"mode":"exclusive"},` +
		`"holders":[{"owner":"worker-2","fence":16,"ttl_ms":2500,"mode":"exclusive"}],"mode":"exclusive","queue":0}`
	semaphoreFull = `{"error":{"code":"locked","message":"held by someone else"},` +
		`"holder":{"owner":"b","fence":16,"ttl_ms":2500},` +
		`"holders":[{"owner":"a","fence":15,"ttl_ms":900},{"owner":"b","fence":16,"ttl_ms":2500}],"limit":2,"queue":1}`
	lockedWithoutHolder = `{"error":{"code":"locked","message":"held by someone else"}}`
	lockedModeAndLimit  = `{"error":{"code":"locked","message":"held by someone else"},` +
		`"holder":{"owner":"b","fence":16,"ttl_ms":2500},"holders":[],"mode":"","limit":2,"queue":0}`
	kindMismatch      = `{"error":{"code":"kind_mismatch","message":"the name is held as a semaphore"},"kind":"semaphore"}`
	limitMismatch     = `{"error":{"code":"limit_mismatch","message":"held with limit 3"},"limit":3}`
	lockDelay         = `{"error":{"code":"lock_delay","message":"refused"},"delay_until":"2026-01-02T03:04:05.678Z"}`
	lockDelayNoMS     = `{"error":{"code":"lock_delay","message":"refused"},"delay_until":"2026-01-02T03:04:05Z"}`
	unsupported       = `{"error":{"code":"unsupported","message":"not in quorum mode"}}`
	notFound          = `{"error":{"code":"not_found","message":"no such route: /nope"}}`
	notFoundWrongCode = `{"error":{"code":"internal","message":"no such route: /nope"}}`
	methodNotAllowed  = `{"error":{"code":"method_not_allowed","message":"DELETE is not allowed"}}`
	demoPanic         = `{"error":{"code":"internal","message":"internal error"}}`
	heldLock          = `{"name":"orders","kind":"lock","held":true,"owner":"worker-1","fence":17,"ttl_ms":2500,` +
		`"mode":"exclusive","holders":[{"owner":"worker-1","fence":17,"ttl_ms":2500,"mode":"exclusive"}],"queue":0,"waiters":[]}`
	delayedLock = `{"name":"orders","kind":"lock","held":false,"owner":"","fence":0,"ttl_ms":0,` +
		`"mode":"","holders":[],"queue":2,` +
		`"waiters":[{"owner":"next","mode":"exclusive"},{"owner":"then","mode":"shared"}],"delay_until":"2026-01-02T03:04:05.678Z"}`
	freeLock          = `{"name":"orders","kind":"lock","held":false,"owner":"","fence":0,"ttl_ms":0,"mode":"","holders":[],"queue":0,"waiters":[]}`
	freeLockWithFence = `{"name":"orders","kind":"lock","held":false,"owner":"","fence":17,"ttl_ms":0,"mode":"","holders":[],"queue":0,"waiters":[]}`
	heldSemaphore     = `{"name":"pool","kind":"semaphore","held":true,"limit":3,` +
		`"holders":[{"owner":"a","fence":15,"ttl_ms":900},{"owner":"b","fence":16,"ttl_ms":2500}],"queue":0,"waiters":[]}`
	semaphoreAsLock = `{"name":"pool","kind":"lock","held":true,"limit":3,` +
		`"holders":[{"owner":"a","fence":15,"ttl_ms":900}],"queue":0}`
	// Demo locks are listed too, and their names need not be /v1 names;
	// semaphores are listed with their limit.
	list = `{"locks":[{"name":"order 42","kind":"lock","owner":"","fence":0,"ttl_ms":900,"mode":"exclusive",` +
		`"holders":[{"owner":"","fence":0,"ttl_ms":900,"mode":"exclusive"}],"queue":0},` +
		`{"name":"orders","kind":"lock","owner":"worker-1","fence":17,"ttl_ms":2500,"mode":"exclusive",` +
		`"holders":[{"owner":"worker-1","fence":17,"ttl_ms":2500,"mode":"exclusive"}],"queue":0},` +
		`{"name":"pool","kind":"semaphore","owner":"b","fence":16,"ttl_ms":2500,"limit":2,` +
		`"holders":[{"owner":"b","fence":16,"ttl_ms":2500}],"queue":1}],"next_cursor":""}`
	listSemaphoreWithMode = `{"locks":[{"name":"pool","kind":"semaphore","owner":"b","fence":16,"ttl_ms":2500,"limit":2,` +
		`"mode":"exclusive","holders":[{"owner":"b","fence":16,"ttl_ms":2500}],"queue":1}],"next_cursor":""}`
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
		{"lease without kind", "POST", "/v1/locks/orders/acquire", 200, nil, leaseWithoutKind, true},
		{"permit", "POST", "/v1/semaphores/pool/acquire", 200, nil, permit, false},
		{"permit extended", "POST", "/v1/semaphores/pool/extend", 200, nil, permit, false},
		{"permit with a mode", "POST", "/v1/semaphores/pool/acquire", 200, nil, permitWithMode, true},
		{"permit answered for a lock", "POST", "/v1/locks/pool/acquire", 200, nil, permit, true},
		{"lease answered for a semaphore", "POST", "/v1/semaphores/orders/acquire", 200, nil, lease, true},
		{"lease with an unknown field", "POST", "/v1/locks/orders/acquire", 200, nil, leaseWithExtra, true},
		{"expiry not in UTC", "POST", "/v1/locks/orders/acquire", 200, nil, leaseInLocalTime, true},
		{"extend that waited", "POST", "/v1/locks/orders/extend", 200, nil, leaseAfterWait, true},
		{"locked", "POST", "/v1/locks/orders/acquire", 409, retryAfter("3"), locked, false},
		{"locked without holder", "POST", "/v1/locks/orders/acquire", 409, retryAfter("3"), lockedWithoutHolder, true},
		{"locked without Retry-After", "POST", "/v1/locks/orders/acquire", 409, nil, locked, true},
		{"locked with Retry-After 0", "POST", "/v1/locks/orders/acquire", 409, retryAfter("0"), locked, true},
		{"locked where not_holder is due", "POST", "/v1/locks/orders/release", 409, retryAfter("3"), locked, true},
		{"locked with mode and limit", "POST", "/v1/locks/orders/acquire", 409, retryAfter("3"), lockedModeAndLimit, true},
		{"semaphore full", "POST", "/v1/semaphores/pool/acquire", 409, retryAfter("1"), semaphoreFull, false},
		{"semaphore full without Retry-After", "POST", "/v1/semaphores/pool/acquire", 409, nil, semaphoreFull, true},
		{"kind mismatch on acquire", "POST", "/v1/locks/pool/acquire", 409, nil, kindMismatch, false},
		{"kind mismatch on release", "POST", "/v1/locks/pool/release", 409, nil, kindMismatch, false},
		{"kind mismatch on check", "POST", "/v1/locks/pool/check", 409, nil, kindMismatch, false},
		{"kind mismatch on GET", "GET", "/v1/locks/pool", 409, nil, kindMismatch, false},
		{"limit mismatch", "POST", "/v1/semaphores/pool/acquire", 409, nil, limitMismatch, false},
		{"limit mismatch on a lock", "POST", "/v1/locks/pool/acquire", 409, nil, limitMismatch, true},
		{"lock delay", "POST", "/v1/locks/orders/acquire", 409, retryAfter("5"), lockDelay, false},
		{"lock delay without Retry-After", "POST", "/v1/locks/orders/acquire", 409, nil, lockDelay, true},
		{"lock delay without milliseconds", "POST", "/v1/locks/orders/acquire", 409, retryAfter("5"), lockDelayNoMS, true},
		{"unsupported", "POST", "/v1/semaphores/pool/acquire", 400, nil, unsupported, false},
		{"unsupported where only invalid_argument is due", "POST", "/v1/locks/orders/extend", 400, nil, unsupported, true},
		{"undocumented status", "POST", "/v1/locks/orders/acquire", 418, nil, notFound, true},
		{"release", "POST", "/v1/locks/orders/release", 204, nil, "", false},
		{"held lock", "GET", "/v1/locks/orders", 200, nil, heldLock, false},
		{"free lock", "GET", "/v1/locks/orders", 200, nil, freeLock, false},
		{"free lock with a fence", "GET", "/v1/locks/orders", 200, nil, freeLockWithFence, true},
		{"lock in a delay", "GET", "/v1/locks/orders", 200, nil, delayedLock, false},
		{"semaphore", "GET", "/v1/semaphores/pool", 200, nil, heldSemaphore, false},
		{"semaphore shown as a lock", "GET", "/v1/semaphores/pool", 200, nil, semaphoreAsLock, true},
		{"list", "GET", "/v1/locks?limit=3", 200, nil, list, false},
		{"list, semaphore with a mode", "GET", "/v1/locks", 200, nil, listSemaphoreWithMode, true},
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
