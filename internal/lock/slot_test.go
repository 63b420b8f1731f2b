package lock

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// trickyKeys exercise Redis's hash tag rule: empty, unclosed and nested
// braces, several tags, and bytes outside ASCII.
var trickyKeys = []string{
	"", "{", "}", "{}", "}{", "{}x", "x{}", "{}{x}", "a{b}c", "a{{b}}", "a{b}{c}",
	"{a", "a}", "{{}}", "{user1000}.following", "{user1000}.followers",
	"123456789", "foo", "bar", "héllo", "{ключ}", "日本語{語}", "\x00\xff{\x80}",
	"lock:foo", "lock:foo:fence", "lock:{x}", "lock:{}", "lock:{}{x}", "lock:}{x}",
	"lockd:fence:{0}",
}

// clusterKeySlots asks a cluster-enabled redis-server for the slot of each
// key, in one pipeline.
func clusterKeySlots(t *testing.T, keys []string) []uint16 {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "nodes.conf")
	srv := redistest.Start(t, redistest.Options{Args: []string{"--cluster-enabled", "yes", "--cluster-config-file", conf}})
	ctx := context.Background()
	cmds, err := srv.Client(t, 0).Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, k := range keys {
			p.ClusterKeySlot(ctx, k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slots := make([]uint16, len(keys))
	for i, c := range cmds {
		slots[i] = uint16(c.(*redis.IntCmd).Val())
	}
	return slots
}

// randomKeys returns n keys of random bytes, one in four with a brace
// pair somewhere, from a fixed seed so that failures repeat.
func randomKeys(n int) []string {
	r := rand.New(rand.NewPCG(1, 2))
	keys := make([]string, n)
	for i := range keys {
		b := make([]byte, r.IntN(20))
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		k := string(b)
		if r.IntN(4) == 0 {
			a, z := r.IntN(len(k)+1), r.IntN(len(k)+1)
			a, z = min(a, z), max(a, z)
			k = k[:a] + "{" + k[a:z] + "}" + k[z:]
		}
		keys[i] = k
	}
	return keys
}

func TestKeySlotSpecExamples(t *testing.T) {
	t.Parallel()
	// From the Redis Cluster specification: the key, and the part of it
	// that is hashed.
	tests := []struct{ key, hashed string }{
		{"{user1000}.following", "user1000"},
		{"foo{}{bar}", "foo{}{bar}"},
		{"foo{{bar}}zap", "{bar"},
		{"foo{bar}{zap}", "bar"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got, want := keySlot(tt.key), keySlot(tt.hashed); got != want {
				t.Errorf("keySlot(%q) = %d, want %d (the slot of %q)", tt.key, got, want, tt.hashed)
			}
		})
	}
	// The specification's check value: CRC16("123456789") is 0x31C3.
	if got, want := keySlot("123456789"), uint16(0x31C3%slotCount); got != want {
		t.Errorf("keySlot(%q) = %d, want %d", "123456789", got, want)
	}
}

func TestKeySlotMatchesRedis(t *testing.T) {
	t.Parallel()
	keys := append(append([]string{}, trickyKeys...), randomKeys(300)...)
	want := clusterKeySlots(t, keys)
	for i, key := range keys {
		if got := keySlot(key); got != want[i] {
			t.Errorf("keySlot(%q) = %d, CLUSTER KEYSLOT says %d", key, got, want[i])
		}
	}
}

func TestSlotTags(t *testing.T) {
	t.Parallel()
	keys := make([]string, slotCount)
	for s := range uint16(slotCount) {
		tag := slotTag(s)
		if got := keySlot(tag); got != s || tag == "" || strings.ContainsAny(tag, "{}") {
			t.Fatalf("slotTag(%d) = %q, whose slot is %d", s, tag, got)
		}
		keys[s] = tag
	}
	for s, got := range clusterKeySlots(t, keys) {
		if got != uint16(s) {
			t.Errorf("CLUSTER KEYSLOT %q = %d, want %d", keys[s], got, s)
		}
	}
}

func TestSharedKeyInLockSlot(t *testing.T) {
	t.Parallel()
	names := append(append([]string{}, trickyKeys...), randomKeys(100)...)
	var keys []string
	for _, name := range names {
		keys = append(keys, sharedKey("lockd:fence:", name), KeyPrefix+name)
	}
	slots := clusterKeySlots(t, keys)
	for i, name := range names {
		if got, want := slots[2*i], slots[2*i+1]; got != want {
			t.Errorf("name %q: %q is in slot %d, %q in slot %d", name, keys[2*i], got, keys[2*i+1], want)
		}
	}
}

func BenchmarkBuildSlotTags(b *testing.B) {
	for b.Loop() {
		buildSlotTags()
	}
}
