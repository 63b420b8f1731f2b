package procs

import (
	"errors"
	"net"
	"strconv"
	"testing"
)

// TestFreePortAvoidsEphemeralRange: a client socket anywhere on the
// machine takes its local port from the kernel's ephemeral range, so a
// port from there can be taken between FreePort and the server's bind.
func TestFreePortAvoidsEphemeralRange(t *testing.T) {
	lo, hi := portRange()
	seen := map[int]bool{}
	for range 50 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if p < lo || p >= hi {
			t.Fatalf("port %d outside %d-%d", p, lo, hi-1)
		}
		if seen[p] {
			t.Fatalf("port %d returned twice", p)
		}
		seen[p] = true
	}
}

// TestPortTakenIsRetried: a redis-server that finds its port bound says
// ErrPortTaken, and a start on ports it chose itself tries new ones.
func TestPortTakenIsRetried(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if r, err := StartRedis(t.TempDir(), RedisOptions{Port: p}); !errors.Is(err, ErrPortTaken) {
		if r != nil {
			r.Kill()
		}
		t.Fatalf("start on a bound port: %v, want ErrPortTaken", err)
	}

	var tried [][]int
	got, err := onFreePorts(2, func(ports []int) (int, error) {
		tried = append(tried, ports)
		if len(tried) < 3 {
			return 0, ErrPortTaken
		}
		return ports[0], nil
	})
	if err != nil || len(tried) != 3 || got != tried[2][0] {
		t.Fatalf("onFreePorts = %d, %v after %v; want the third try's port", got, err, tried)
	}
	if tried[0][0] == tried[1][0] || tried[0][1] == tried[2][1] {
		t.Fatalf("a retry reused a port: %v", tried)
	}
	if _, err := onFreePorts(1, func([]int) (int, error) { return 0, ErrPortTaken }); !errors.Is(err, ErrPortTaken) {
		t.Fatalf("always taken: %v, want ErrPortTaken after 3 tries", err)
	}
}
