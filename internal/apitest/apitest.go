// Package apitest holds lockd's HTTP answers to the published contract,
// doc/openapi.yaml, from inside tests. A test talks to a server through
// Client (or wraps its own transport with Transport) and every response is
// checked against the document: an undocumented status, a missing header or
// a body that does not fit its schema fails the test. That way the handlers
// and the document cannot drift apart without a red test.
//
// Only responses are checked. Tests send malformed requests on purpose to
// see lockd's own 400s, and a request validator would stand in the way.
//
// It is meant for _test.go files only, which is why it may import testing.
package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// SpecPath is the contract's location relative to the repository root.
const SpecPath = "doc/openapi.yaml"

// options make the validator strict: kin-openapi lets a status the document
// does not list pass unless IncludeResponseStatus is set, and MultiError
// reports every mismatch of a body rather than the first one. Schema dumps
// are left out of the messages: the report shows the body already, and the
// schema is in the document.
var options = &openapi3filter.Options{
	IncludeResponseStatus: true,
	MultiError:            true,
	SchemaValidationOptions: []openapi3.SchemaValidationOption{
		openapi3.DisableSchemaErrorDetails(),
	},
}

// spec is the loaded contract, ready to check responses.
type spec struct {
	router routers.Router
	// unrouted stands for every request no documented operation matches:
	// the contract lets any path answer the generic 404 and 405, and
	// nothing else.
	unrouted *routers.Route
}

// loadSpec reads the document once per test binary; it never changes
// while tests run, and parsing it for every client would be waste.
var loadSpec = sync.OnceValues(func() (*spec, error) {
	root, err := redistest.RepoRoot()
	if err != nil {
		return nil, err
	}
	return load(filepath.Join(root, SpecPath))
})

func load(path string) (*spec, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	// The router and the validator assume a valid document; an invalid one
	// would give confusing verdicts rather than an error.
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("%s is not a valid OpenAPI document: %w", path, err)
	}

	// The document's servers are the compose ports, but tests run servers
	// on random loopback ports. A copy without servers makes the router
	// match on the path alone.
	pathsOnly := *doc
	pathsOnly.Servers = nil
	router, err := gorillamux.NewRouter(&pathsOnly)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", path, err)
	}

	if doc.Components == nil {
		return nil, fmt.Errorf("%s has no components", path)
	}
	notFound := doc.Components.Responses["NotFound"]
	methodNotAllowed := doc.Components.Responses["MethodNotAllowed"]
	invalid := doc.Components.Responses["InvalidArgument"]
	if notFound == nil || methodNotAllowed == nil || invalid == nil {
		return nil, fmt.Errorf("%s lacks components/responses NotFound, MethodNotAllowed or InvalidArgument", path)
	}
	unrouted := &routers.Route{
		Spec: doc,
		Path: "(no documented operation)",
		Operation: &openapi3.Operation{Responses: openapi3.NewResponses(
			// A name the router's pattern cannot match, such as the
			// empty one in /v1/locks//acquire, still reaches lockd's name
			// check.
			openapi3.WithStatus(http.StatusBadRequest, invalid),
			openapi3.WithStatus(http.StatusNotFound, notFound),
			openapi3.WithStatus(http.StatusMethodNotAllowed, methodNotAllowed),
		)},
	}
	return &spec{router: router, unrouted: unrouted}, nil
}

// check validates one response against the contract. body is the whole
// response body; resp.Body is not read.
func (s *spec) check(req *http.Request, resp *http.Response, body []byte) error {
	route, params, err := s.router.FindRoute(req)
	if errors.Is(err, routers.ErrPathNotFound) || errors.Is(err, routers.ErrMethodNotAllowed) {
		// Both cases go to the same pair of answers: the router and Gin can
		// disagree on which applies (Gin decodes %2F in a name, the router
		// does not), and either is an honest "no such operation".
		route, params, err = s.unrouted, nil, nil
	}
	if err != nil {
		return fmt.Errorf("find the route: %w", err)
	}

	// ValidateResponse lets redirects and 304 through whatever the document
	// says; lockd sends none, so each status must be listed.
	documented := route.Operation.Responses.Status(resp.StatusCode)
	if documented == nil {
		return fmt.Errorf("status %d is not documented for this operation", resp.StatusCode)
	}
	// ValidateResponse does not look at the body of a response documented
	// without content (the 204 of release): it must be empty.
	if len(documented.Value.Content) == 0 && len(body) > 0 {
		return fmt.Errorf("status %d is documented without a body, but %d bytes came", resp.StatusCode, len(body))
	}

	if err := headersByCode(documented, resp.Header, body); err != nil {
		return err
	}

	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    options,
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Options: options,
	}
	input.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(req.Context(), input)
}

// headersByCode checks what OpenAPI cannot say: a header that one
// response carries with some of its error codes only. Such a header is
// optional in the document and lists those codes in the extension
// x-required-with-codes; with one of them in the body's error.code, it
// must be there.
func headersByCode(documented *openapi3.ResponseRef, header http.Header, body []byte) error {
	var e struct{ Error struct{ Code string } }
	if json.Unmarshal(body, &e) != nil || e.Error.Code == "" {
		return nil
	}
	for name, h := range documented.Value.Headers {
		if h.Value == nil {
			continue
		}
		codes, _ := h.Value.Extensions["x-required-with-codes"].([]any)
		if slices.Contains(codes, any(e.Error.Code)) && header.Get(name) == "" {
			return fmt.Errorf("header %s is required with the code %s", name, e.Error.Code)
		}
	}
	return nil
}

type transport struct {
	t    testing.TB
	spec *spec
	next http.RoundTripper
}

// Transport returns a RoundTripper that sends requests through next and
// reports, with t.Errorf, every response that does not match the contract.
// Requests are never checked. The response body stays readable: it is read
// whole for the check and handed back from memory, so streaming answers
// arrive only once complete.
func Transport(t testing.TB, next http.RoundTripper) http.RoundTripper {
	t.Helper()
	s, err := loadSpec()
	if err != nil {
		t.Fatalf("apitest: %v", err)
	}
	return &transport{t: t, spec: s, next: next}
}

func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tr.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		// The caller would have hit the same error reading the body itself.
		return nil, fmt.Errorf("apitest: read the response body: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))

	if err := tr.spec.check(req, resp, body); err != nil {
		tr.t.Errorf("%s %s answered %d, which breaks %s:\n%v\nbody: %s",
			req.Method, req.URL.RequestURI(), resp.StatusCode, SpecPath, err, body)
	}
	return resp, nil
}

// Client returns an HTTP client whose every response is checked against the
// contract, failing t on a mismatch.
//
// It has no Timeout: an acquire may wait up to five minutes by design, so
// tests bound each request with its context instead. It does not follow
// redirects: lockd sends none, and one should reach the test (and the
// check) as the answer it is, not lead the client to another route.
func Client(t testing.TB) *http.Client {
	t.Helper()
	// A transport of its own, so that its idle connections, and the
	// goroutines behind them, end with the test that made it.
	base := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(base.CloseIdleConnections)
	return &http.Client{
		Transport: Transport(t, base),
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
