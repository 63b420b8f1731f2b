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

type readyJSON struct {
	Status string     `json:"status"` // "ready" or "not_ready"
	Reason string     `json:"reason,omitempty"`
	Nodes  []nodeJSON `json:"nodes"`
}

// healthz is liveness: the process answers. It never touches Redis, or a
// Redis outage would get every replica restarted.
func (s *server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "alive"})
}

// readyz is readiness: a quorum of Redis nodes answered within 500 ms and
// are fit for locks (lock.Manager.Health), and the replica is not shutting
// down.
func (s *server) readyz(c *gin.Context) {
	ready, nodes := s.locks.Health(c.Request.Context(), readyTimeout)
	body := readyJSON{Status: "ready", Nodes: make([]nodeJSON, len(nodes))}
	for i, n := range nodes {
		body.Nodes[i] = nodeJSON{Addr: n.Addr, OK: n.OK, Error: n.Err}
		if !n.OK && body.Reason == "" {
			body.Reason = n.Addr + ": " + n.Err
		}
	}
	select {
	case <-s.opts.Draining:
		ready, body.Reason = false, "shutting down"
	default:
	}
	if ready {
		body.Reason = ""
		c.JSON(http.StatusOK, body)
		return
	}
	if body.Reason == "" {
		body.Reason = "no quorum of Redis nodes"
	}
	body.Status = "not_ready"
	c.Header("Retry-After", "1")
	c.JSON(http.StatusServiceUnavailable, body)
}
