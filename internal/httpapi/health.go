package httpapi

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// readyTimeout bounds each node's answer to a readiness check.
const readyTimeout = 500 * time.Millisecond

type nodeJSON struct {
	Addr  string `json:"addr"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// readyJSON is /readyz's answer. Status and Reason are for anyone; Detail
// and Nodes name Redis hosts and carry Redis's own errors (WRONGPASS …),
// so only a caller allowed the details (showDetail) sees them.
type readyJSON struct {
	Status string     `json:"status"`           // "ready" or "not_ready"
	Reason string     `json:"reason,omitempty"` // "redis" or "shutting_down"
	Detail string     `json:"detail,omitempty"`
	Nodes  []nodeJSON `json:"nodes,omitempty"`
}

// healthz is liveness: the process answers. It never touches Redis, or a
// Redis outage would get every replica restarted.
func (s *server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "alive"})
}

// readyz is readiness: a quorum of Redis nodes answered within 500 ms and
// are fit for locks (lock.Manager.Health), and the replica is not shutting
// down. Everyone gets the status code and a one-word reason; the nodes and
// their errors go only to showDetail's callers.
func (s *server) readyz(c *gin.Context) {
	ready, nodes := s.locks.Health(c.Request.Context(), readyTimeout)
	body := readyJSON{Status: "ready"}
	nodesJSON := make([]nodeJSON, len(nodes))
	for i, n := range nodes {
		nodesJSON[i] = nodeJSON{Addr: n.Addr, OK: n.OK, Error: n.Err}
		if !n.OK && body.Detail == "" {
			body.Detail = n.Addr + ": " + n.Err
		}
	}
	select {
	case <-s.opts.Draining:
		ready, body.Reason, body.Detail = false, "shutting_down", "shutting down"
	default:
	}
	switch {
	case ready:
		body.Detail = ""
	case body.Reason == "":
		body.Reason = "redis"
		if body.Detail == "" {
			body.Detail = "no quorum of Redis nodes"
		}
	}
	if s.showDetail(c) {
		body.Nodes = nodesJSON
	} else {
		body.Detail = ""
	}
	if ready {
		c.JSON(http.StatusOK, body)
		return
	}
	body.Status = "not_ready"
	c.Header("Retry-After", "1")
	c.JSON(http.StatusServiceUnavailable, body)
}

// showDetail is the rule for /readyz's details: the caller asks for them
// with ?verbose and, when API_TOKENS is set, sends a valid token; without
// tokens, it must be on this host (localClient): a probe over the network
// learns only ready or not.
func (s *server) showDetail(c *gin.Context) bool {
	if _, verbose := c.GetQuery("verbose"); !verbose {
		return false
	}
	if len(s.opts.APITokens) > 0 {
		return validToken(s.opts.APITokens, c.Request)
	}
	return localClient(c.Request)
}
