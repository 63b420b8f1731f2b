package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// uiFiles is the dashboard: plain HTML, CSS and JavaScript, no build step
// and nothing loaded from elsewhere, so the binary serves it alone.
//
//go:embed ui/index.html ui/app.js ui/style.css
var uiFiles embed.FS

var uiRoot, _ = fs.Sub(uiFiles, "ui")

// uiConfig is what the page needs to know about its replica: its name, and
// the peers it sends demo requests to. When API_TOKENS is set, both go only
// to a caller with a valid token (the page asks again once it has one):
// the name defaults to hostname:port, and the peers map the deployment.
type uiConfig struct {
	Replica string   `json:"replica"`
	Peers   []string `json:"peers"`
	// Auth says /v1 needs a bearer token: the page asks for one.
	Auth bool `json:"auth"`
}

// ui is GET /ui/*file: the page's files, and config.json.
func (s *server) ui(c *gin.Context) {
	c.Header("Content-Security-Policy", "default-src 'self'; connect-src "+s.connectSrc()+
		"; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Cache-Control", "no-cache")
	file := strings.TrimPrefix(c.Param("file"), "/")
	switch file {
	case "config.json":
		cfg := uiConfig{Replica: s.opts.Replica, Peers: s.opts.UIPeers, Auth: len(s.opts.APITokens) > 0}
		if cfg.Auth && !validToken(s.opts.APITokens, c.Request) {
			cfg.Replica, cfg.Peers = "", nil
		}
		if cfg.Peers == nil {
			cfg.Peers = []string{}
		}
		c.Header("Vary", "Authorization")
		c.JSON(http.StatusOK, cfg)
	case "", "index.html", "app.js", "style.css":
		if file == "" {
			file = "index.html"
		}
		// GET /ui/index.html is redirected to /ui/ by the file server.
		http.ServeFileFS(c.Writer, c.Request, uiRoot, file)
	default:
		notFound(c)
	}
}

// connectSrc is where the page may connect: this replica and its peers.
// The policy comes with the page, which a browser loads without a token,
// so with API_TOKENS set it names the peers' schemes (http:, https:)
// rather than the peers themselves, which config.json keeps to callers
// with a token. The page sets every text from the API as text, never as
// markup, so the wider policy is a second line of defence only.
func (s *server) connectSrc() string {
	src := []string{"'self'"}
	if len(s.opts.APITokens) == 0 {
		return strings.Join(append(src, s.opts.UIPeers...), " ")
	}
	for _, p := range s.opts.UIPeers {
		scheme, _, _ := strings.Cut(p, "://")
		if !slices.Contains(src, scheme+":") {
			src = append(src, scheme+":")
		}
	}
	return strings.Join(src, " ")
}
