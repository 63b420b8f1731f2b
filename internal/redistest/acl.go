package redistest

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
)

// ACLRefusals returns what ACL LOG has recorded so far, oldest first, as
// "reason object" pairs such as "command flushall", "key other" or
// "channel other". Tests use it to show that a client ran nothing its rule
// refuses, even where the client swallows the error.
func (s *Server) ACLRefusals(t testing.TB) []string {
	t.Helper()
	c := redis.NewClient(s.ClientOptions(0))
	defer c.Close()
	// ACL LOG keeps the last 128 entries by default; that bounds this too.
	entries, err := c.ACLLog(context.Background(), 0).Result()
	if err != nil {
		t.Fatalf("ACL LOG: %v", err)
	}
	out := make([]string, 0, len(entries))
	for i := len(entries) - 1; i >= 0; i-- {
		out = append(out, entries[i].Reason+" "+entries[i].Object)
	}
	return out
}
