package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// uiFiles is the dashboard: plain HTML, CSS and JavaScript, no build step
// and nothing loaded from elsewhere, so the binary serves it alone.
//
//go:embed ui/index.html ui/app.js ui/style.css
var uiFiles embed.FS

var uiRoot, _ = fs.Sub(uiFiles, "ui")

// uiConfig is what the page needs to know about its replica.
type uiConfig struct {
	Replica string   `json:"replica"`
	Peers   []string `json:"peers"`
	// Auth says /v1 needs a bearer token: the page asks for one.
	Auth bool `json:"auth"`
}

// ui is GET /ui/*file: the page's files, and config.json.
func (s *server) ui(c *gin.Context) {
	// The page may talk to this replica and its peers, and nothing else.
	c.Header("Content-Security-Policy", "default-src 'self'; connect-src 'self' "+strings.Join(s.opts.UIPeers, " ")+
		"; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Cache-Control", "no-cache")
	file := strings.TrimPrefix(c.Param("file"), "/")
	switch file {
	case "config.json":
		peers := s.opts.UIPeers
		if peers == nil {
			peers = []string{}
		}
		c.JSON(http.StatusOK, uiConfig{Replica: s.opts.Replica, Peers: peers, Auth: len(s.opts.APITokens) > 0})
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
