package deploy

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
)

// configVariables lists the variables config.Load reads, by recording them.
func configVariables(t *testing.T) []string {
	t.Helper()
	seen := map[string]bool{}
	if _, err := config.Load(func(k string) string { seen[k] = true; return "" }); err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range seen {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func matches(t *testing.T, file, re string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), file))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(string(b), -1) {
		if !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	slices.Sort(out)
	return out
}

// TestConfigurationIsDocumented: the configuration table of
// doc/OPERATIONS.md and .env.example list exactly the variables lockd reads.
func TestConfigurationIsDocumented(t *testing.T) {
	want := configVariables(t)
	if got := matches(t, "doc/OPERATIONS.md", "(?m)^\\| `([A-Z_]+)` \\|"); !slices.Equal(got, want) {
		t.Errorf("doc/OPERATIONS.md configuration table lists %v, lockd reads %v", got, want)
	}
	if got := matches(t, ".env.example", `(?m)^([A-Z_]+)=`); !slices.Equal(got, want) {
		t.Errorf(".env.example sets %v, lockd reads %v", got, want)
	}
}

// TestREADMECurlsHitTheReplicas: every URL the README tells people to curl
// is a published port of the compose file or make demo, on a real route.
func TestREADMECurlsHitTheReplicas(t *testing.T) {
	p := loadProject(t)
	published := map[string]bool{}
	for _, s := range p.Services {
		for _, port := range s.Ports {
			published[port.Published] = true
		}
	}
	urls := matches(t, "README.md", `curl --location '(http://[^']+)'`)
	if len(urls) < 2 {
		t.Fatalf("README shows %d curl URLs, want the two of the walk-through", len(urls))
	}
	for _, u := range urls {
		m := regexp.MustCompile(`^http://localhost:(\d+)/lock\?resource_id=[\w-]+$`).FindStringSubmatch(u)
		if m == nil || !published[m[1]] {
			t.Errorf("README curls %s, which is not GET /lock on a published port", u)
		}
	}
}

// postmanItem is a request or a folder of a Postman v2.1 collection, with
// the fields the tests below look at.
type postmanItem struct {
	Name    string
	Item    []postmanItem // a folder's items
	Event   []postmanEvent
	Request *struct {
		Method string
		Header []postmanHeader
		Body   *struct {
			Mode    string
			Raw     string
			Options struct{ Raw struct{ Language string } }
		}
		URL struct {
			Raw      string
			Protocol string
			Host     []string
			Port     string
			Path     []string
			Query    []struct{ Key, Value string }
		}
	}
}

type postmanEvent struct {
	Listen string
	Script struct{ Exec []string }
}

type postmanHeader struct {
	Key, Value string
	Disabled   bool
}

// TestPostmanCollection: the collection has the README's two demo clients,
// unchanged, and a "/v1" folder whose requests stay within the /v1 contract.
func TestPostmanCollection(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "doc", "go-distributed-lock.postman_collection.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Info     struct{ Schema string }
		Item     []postmanItem
		Variable []struct{ Key, Value string }
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Info.Schema != "https://schema.getpostman.com/json/collection/v2.1.0/collection.json" {
		t.Errorf("schema %q, want Postman v2.1", c.Info.Schema)
	}
	want := map[string]string{"Client A": "8081", "Client B": "8082", "/v1": ""}
	for _, it := range c.Item {
		if it.Name == "/v1" {
			checkV1Folder(t, it)
			delete(want, it.Name)
			continue
		}
		if it.Request == nil {
			t.Errorf("item %q is a folder, want a demo request", it.Name)
			continue
		}
		u := it.Request.URL
		if want[it.Name] != u.Port || it.Request.Method != "GET" || !slices.Equal(u.Path, []string{"lock"}) ||
			len(u.Query) != 1 || u.Query[0].Key != "resource_id" || u.Query[0].Value != "{{resource_id}}" {
			t.Errorf("item %q: %s %+v", it.Name, it.Request.Method, u)
		}
		delete(want, it.Name)
	}
	if len(want) != 0 {
		t.Errorf("missing items %v", want)
	}

	vars := map[string]string{}
	for _, v := range c.Variable {
		vars[v.Key] = v.Value
	}
	if vars["resource_id"] == "" || !v1Name.MatchString(vars["lock_name"]) {
		t.Errorf("variables %+v, want resource_id for the demo clients and a valid lock_name for /v1", c.Variable)
	}
	for _, k := range []string{"token", "fence"} {
		if _, ok := vars[k]; !ok {
			t.Errorf("no collection variable %q, which the /v1 requests fill in", k)
		}
	}
	for _, m := range regexp.MustCompile(`\{\{(\w+)\}\}`).FindAllStringSubmatch(string(b), -1) {
		if _, ok := vars[m[1]]; !ok {
			t.Errorf("the collection uses {{%s}}, which is not one of its variables", m[1])
		}
	}
}

// v1Field is a body field the /v1 contract accepts.
type v1Field struct {
	kind     string        // "string", "bool", "duration" (a Go duration in a JSON string) or "fence" (an integer >= 1)
	min, max time.Duration // a duration's range
	required bool
}

// v1Routes is the /v1 contract (doc/openapi.yaml): each route with the body
// fields and query parameters it accepts. A route not here does not exist.
var v1Routes = map[string]struct {
	body  map[string]v1Field
	query []string
}{
	"POST /v1/locks/{name}/acquire": {body: map[string]v1Field{
		"ttl":        {kind: "duration", min: 100 * time.Millisecond, max: time.Hour},
		"wait":       {kind: "duration", max: 5 * time.Minute},
		"owner":      {kind: "string"},
		"mode":       {kind: "string"},
		"fair":       {kind: "bool"},
		"lock_delay": {kind: "duration", max: time.Minute},
	}},
	"POST /v1/locks/{name}/extend": {body: map[string]v1Field{
		"token": {kind: "string", required: true},
		"ttl":   {kind: "duration", min: 100 * time.Millisecond, max: time.Hour},
	}},
	"POST /v1/locks/{name}/release": {body: map[string]v1Field{"token": {kind: "string", required: true}}},
	"POST /v1/locks/{name}/check":   {body: map[string]v1Field{"fence": {kind: "fence", required: true}}},
	"GET /v1/locks/{name}":          {},
	"GET /v1/locks":                 {query: []string{"prefix", "limit", "cursor"}},
}

// v1Name is the contract's lock name.
var v1Name = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,255}$`)

// checkV1Folder checks that every request of the /v1 folder goes to a
// replica, on a route of the contract, with a body the contract accepts, and
// that the folder shows every route at least once.
func checkV1Folder(t *testing.T, folder postmanItem) {
	t.Helper()
	seen := map[string]bool{}
	for _, it := range folder.Item {
		if it.Request == nil {
			t.Errorf("/v1 item %q is not a request", it.Name)
			continue
		}
		if route := checkV1Request(t, it); route != "" {
			seen[route] = true
		}
	}
	for route := range v1Routes {
		if !seen[route] {
			t.Errorf("the /v1 folder has no request for %s", route)
		}
	}
}

// checkV1Request checks one request of the /v1 folder and returns its route
// in the contract, or "" if it has none.
func checkV1Request(t *testing.T, it postmanItem) string {
	t.Helper()
	r, u := it.Request, it.Request.URL
	if u.Protocol != "http" || !slices.Equal(u.Host, []string{"localhost"}) || (u.Port != "8081" && u.Port != "8082") {
		t.Errorf("%q goes to %s://%v:%s, want one of the replicas, localhost:8081 or 8082", it.Name, u.Protocol, u.Host, u.Port)
	}
	if strings.Contains(it.Name, "808") && !strings.Contains(it.Name, u.Port) {
		t.Errorf("%q is sent to port %s", it.Name, u.Port)
	}
	raw, sep := "http://localhost:"+u.Port+"/"+strings.Join(u.Path, "/"), "?"
	for _, q := range u.Query {
		raw += sep + q.Key + "=" + q.Value
		sep = "&"
	}
	if u.Raw != raw {
		t.Errorf("%q: url.raw %q disagrees with its parts (%q)", it.Name, u.Raw, raw)
	}
	if !slices.ContainsFunc(it.Event, func(e postmanEvent) bool { return e.Listen == "test" && len(e.Script.Exec) > 0 }) {
		t.Errorf("%q has no test script", it.Name)
	}

	pattern := u.Path // with the lock's name replaced by {name}
	if len(u.Path) > 2 && u.Path[0] == "v1" && u.Path[1] == "locks" {
		if name := u.Path[2]; name != "{{lock_name}}" && !v1Name.MatchString(name) {
			t.Errorf("%q: %q is not a valid lock name", it.Name, name)
		}
		pattern = append([]string{"v1", "locks", "{name}"}, u.Path[3:]...)
	}
	route := r.Method + " /" + strings.Join(pattern, "/")
	spec, ok := v1Routes[route]
	if !ok {
		t.Errorf("%q: %s is not a /v1 route", it.Name, route)
		return ""
	}
	for _, q := range u.Query {
		if !slices.Contains(spec.query, q.Key) {
			t.Errorf("%q: %s takes no query parameter %q", it.Name, route, q.Key)
		}
	}

	if r.Method == "GET" {
		if r.Body != nil && r.Body.Raw != "" {
			t.Errorf("%q: a GET with a body", it.Name)
		}
		return route
	}
	body := "{}" // the contract's reading of a missing body
	if r.Body != nil {
		if r.Body.Mode != "raw" || r.Body.Options.Raw.Language != "json" {
			t.Errorf("%q: body mode %q, language %q; want raw JSON", it.Name, r.Body.Mode, r.Body.Options.Raw.Language)
		}
		if !slices.ContainsFunc(r.Header, func(h postmanHeader) bool {
			return strings.EqualFold(h.Key, "Content-Type") && h.Value == "application/json" && !h.Disabled
		}) {
			t.Errorf("%q: no Content-Type: application/json header", it.Name)
		}
		body = r.Body.Raw
	}
	checkV1Body(t, it.Name, body, spec.body)
	return route
}

// checkV1Body checks a request body, with {{fence}} set to a fence, against
// the fields its route accepts.
func checkV1Body(t *testing.T, item, body string, accepts map[string]v1Field) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(strings.ReplaceAll(body, "{{fence}}", "17")))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		t.Errorf("%q: body is not a JSON object: %v", item, err)
		return
	}
	if dec.Decode(new(any)) != io.EOF {
		t.Errorf("%q: body has data after its JSON object", item)
	}
	for k, v := range fields {
		shown, _ := json.Marshal(v) // as written, so that 17 and "17" differ
		f, ok := accepts[k]
		if !ok {
			t.Errorf("%q: body field %q is not in the contract for this route", item, k)
			continue
		}
		s, isString := v.(string)
		switch f.kind {
		case "string":
			if !isString {
				t.Errorf("%q: %s is %s, want a string", item, k, shown)
			}
		case "bool":
			if _, ok := v.(bool); !ok {
				t.Errorf("%q: %s is %s, want true or false", item, k, shown)
			}
		case "duration":
			d, err := time.ParseDuration(s)
			if !isString || err != nil || d < f.min || d > f.max {
				t.Errorf("%q: %s is %s, want a duration in a string, %v to %v", item, k, shown, f.min, f.max)
			}
		case "fence":
			num, _ := v.(json.Number)
			if n, err := num.Int64(); err != nil || n < 1 {
				t.Errorf("%q: %s is %s, want an integer >= 1 (an unquoted {{fence}})", item, k, shown)
			}
		}
	}
	for k, f := range accepts {
		if _, ok := fields[k]; f.required && !ok {
			t.Errorf("%q: body lacks %q, which the route requires", item, k)
		}
	}
}
