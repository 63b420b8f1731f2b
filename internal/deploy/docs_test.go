package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

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

// TestConfigurationIsDocumented: the README's table and .env.example list
// exactly the variables lockd reads.
func TestConfigurationIsDocumented(t *testing.T) {
	want := configVariables(t)
	if got := matches(t, "README.md", "(?m)^\\| `([A-Z_]+)` \\|"); !slices.Equal(got, want) {
		t.Errorf("README configuration table lists %v, lockd reads %v", got, want)
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

func TestPostmanCollection(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(root(t), "doc", "go-distributed-lock.postman_collection.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Info struct{ Schema string }
		Item []struct {
			Name    string
			Request struct {
				Method string
				URL    struct {
					Raw   string
					Port  string
					Path  []string
					Query []struct{ Key, Value string }
				}
			}
		}
		Variable []struct{ Key, Value string }
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Info.Schema != "https://schema.getpostman.com/json/collection/v2.1.0/collection.json" {
		t.Errorf("schema %q, want Postman v2.1", c.Info.Schema)
	}
	want := map[string]string{"Client A": "8081", "Client B": "8082"}
	for _, it := range c.Item {
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
	if len(c.Variable) != 1 || c.Variable[0].Key != "resource_id" || c.Variable[0].Value == "" {
		t.Errorf("variables %+v, want one resource_id shared by both clients", c.Variable)
	}
}
