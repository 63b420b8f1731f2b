package httpapi

import (
	"net/http"
	"sync"
	"testing"

	"github.com/go-distributed-lock/go-distributed-lock/internal/apitest"
)

// apiClient checks every response a test receives against doc/openapi.yaml,
// so the document cannot drift from the handlers.
func apiClient(t testing.TB) *http.Client {
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if c, ok := clients[t]; ok {
		return c
	}
	c := apitest.Client(t)
	clients[t] = c
	t.Cleanup(func() { clientsMu.Lock(); delete(clients, t); clientsMu.Unlock() })
	return c
}

var (
	clientsMu sync.Mutex
	clients   = map[testing.TB]*http.Client{}
)
