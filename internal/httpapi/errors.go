package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// errorBody is the one error shape of the service outside the README's demo
// endpoint, whose shape the README fixes: {"error":{"code","message"}}.
// Codes are stable; messages are for people.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(c *gin.Context, status int, code, msg string) {
	c.AbortWithStatusJSON(status, errorBody{errorDetail{Code: code, Message: msg}})
}

func notFound(c *gin.Context) {
	writeError(c, http.StatusNotFound, "not_found", "no such route: "+c.Request.URL.Path)
}

func methodNotAllowed(c *gin.Context) {
	writeError(c, http.StatusMethodNotAllowed, "method_not_allowed", c.Request.Method+" is not allowed on "+c.Request.URL.Path)
}
