package httpapi

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/logging"
)

// accessLog writes one record per request after it completes. The text
// format renders it as Gin's familiar access line.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		// The record goes to the handler directly: Logger.LogAttrs would
		// walk the stack for a caller no handler here prints, on every
		// request.
		ctx, h := c.Request.Context(), log.Handler()
		if !h.Enabled(ctx, slog.LevelInfo) {
			return
		}
		now := time.Now()
		r := slog.NewRecord(now, slog.LevelInfo, logging.AccessMessage, 0)
		r.AddAttrs(
			slog.Int(logging.KeyStatus, c.Writer.Status()),
			slog.Float64(logging.KeySeconds, now.Sub(start).Seconds()),
			slog.String(logging.KeyClientIP, c.ClientIP()),
			slog.String(logging.KeyMethod, c.Request.Method),
			slog.String(logging.KeyPath, c.Request.URL.RequestURI()),
		)
		_ = h.Handle(ctx, r)
	}
}

// recovery turns a panic into a logged 500 with the generic error body, so
// one bad request never takes the process down.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, err any) {
		log.ErrorContext(c.Request.Context(), "Error: panic while serving request", "panic", err, "path", c.Request.URL.Path)
		writeError(c, http.StatusInternalServerError, "internal", "internal error")
	})
}

// requestID gives every request an id: the caller's X-Request-ID when it is
// a sane one (so ids can follow a request across services), else a fresh
// random one. It is echoed in the answer and carried by the request's
// context into every log record.
func requestID(c *gin.Context) {
	id := c.GetHeader(requestIDHeader)
	if !validRequestID(id) {
		var b [12]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Header(requestIDHeader, id)
	c.Request = c.Request.WithContext(logging.WithRequestID(c.Request.Context(), id))
	c.Next()
}

const requestIDHeader = "X-Request-ID"

// validRequestID accepts up to 128 characters that are safe in logs and
// headers.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_.:/+=", c) >= 0) {
			return false
		}
	}
	return true
}

// requireToken lets a request through only with "Authorization: Bearer T"
// for one of tokens.
func requireToken(tokens []string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !validToken(tokens, c.Request) {
			c.Header("WWW-Authenticate", `Bearer realm="lockd"`)
			writeError(c, http.StatusUnauthorized, "unauthenticated", "a valid bearer token is required: Authorization: Bearer <token>")
			return
		}
		c.Next()
	}
}

// validToken says whether r carries "Authorization: Bearer T" for one of
// tokens. Every token is compared, in constant time, so the answer's timing
// says nothing about how close a guess was.
func validToken(tokens []string, r *http.Request) bool {
	got, ok := bearer(r.Header.Get("Authorization"))
	match := 0
	for _, t := range tokens {
		match |= subtle.ConstantTimeCompare([]byte(got), []byte(t))
	}
	return ok && match == 1
}

// bearer reads the token of an Authorization header of the Bearer scheme
// (the scheme's name is case-insensitive).
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// countRequests reports every request by its route template (never the raw
// path, which holds lock names).
func countRequests(m Metrics) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		m.HTTPRequest(route, c.Request.Method, c.Writer.Status(), time.Since(start))
	}
}

// cors lets the dashboards of exactly the peers' origins call /lock and /v1
// (their demo buttons and their event streams) from the browser, and
// answers their preflights. Any other origin gets no CORS header at all, so
// browsers keep it out.
func cors(origins []string) gin.HandlerFunc {
	return func(c *gin.Context) {
		p := c.Request.URL.Path
		if len(origins) == 0 || (p != "/lock" && !strings.HasPrefix(p, "/v1/")) {
			c.Next()
			return
		}
		c.Writer.Header().Add("Vary", "Origin")
		origin := c.GetHeader("Origin")
		if !slices.Contains(origins, origin) {
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Retry-After, X-Request-ID")
		if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}

// crossOrigin refuses what a page of another site makes a browser send to
// change locks: a POST to /v1 (a text/plain POST needs no CORS preflight,
// so CORS alone would let it through) and GET /lock, which takes a lock
// although it is a GET. net/http's CrossOriginProtection decides, from
// Sec-Fetch-Site, or from Origin against Host on browsers without it;
// requests with neither header (curl, programs) pass, and so do the
// dashboards of UI_PEERS. It lets safe methods through, so GET /lock is
// judged as the POST it is in effect. peers must be origins
// (scheme://host[:port]).
func crossOrigin(peers []string) (gin.HandlerFunc, error) {
	cop := http.NewCrossOriginProtection()
	for _, p := range peers {
		if err := cop.AddTrustedOrigin(p); err != nil {
			return nil, err
		}
	}
	return func(c *gin.Context) {
		r, p := c.Request, c.Request.URL.Path
		if p != "/lock" && !strings.HasPrefix(p, "/v1/") {
			c.Next()
			return
		}
		if p == "/lock" && r.Method == http.MethodGet {
			r = r.WithContext(r.Context()) // a shallow copy
			r.Method = http.MethodPost
		}
		if cop.Check(r) != nil {
			writeError(c, http.StatusForbidden, "cross_origin",
				"cross-origin request refused: a page of another site may not take or change locks here (only this replica's dashboard and those of UI_PEERS may)")
			return
		}
		c.Next()
	}, nil
}

// localClient says whether r came straight from this host: its peer is a
// loopback address and it carries no proxy's forwarding header (a reverse
// proxy on this host would make every client look local).
func localClient(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-IP"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
