package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
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
//
// ?exclude=redis leaves Redis out, as the Kubernetes API server's
// /readyz?exclude=etcd leaves etcd out: only draining fails it. Kubernetes'
// readinessProbe uses it (doc/KUBERNETES.md): Redis is shared by every
// replica, so its outage would empty the Service, and clients would get
// refused connections instead of a 503 redis_unavailable with Retry-After.
func (s *server) readyz(c *gin.Context) {
	skipRedis, ok := excludeRedis(c)
	if !ok {
		return
	}
	ready, nodes := true, []lock.NodeHealth(nil)
	if !skipRedis {
		ready, nodes = s.locks.Health(c.Request.Context(), readyTimeout)
	}
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

// excludeRedis reads /readyz's exclude parameters. Redis is the only check
// that can be left out; any other value, an empty one included, is answered
// here with 400 invalid_argument (ok false), so that a probe naming a check
// that does not exist fails loudly instead of passing while checking less
// than its author thought.
func excludeRedis(c *gin.Context) (skip, ok bool) {
	for _, v := range c.QueryArray("exclude") {
		if v != "redis" {
			writeError(c, http.StatusBadRequest, "invalid_argument",
				"exclude "+strconv.Quote(truncate(v, 32))+" is not a check; the only one /readyz can leave out is redis")
			return false, false
		}
		skip = true
	}
	return skip, true
}
