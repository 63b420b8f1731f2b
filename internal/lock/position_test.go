package lock

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// modes are a Manager outside cluster mode and one in it, for parsing:
// neither connects to anything.
var modes = map[string]*Manager{"single": {}, "cluster": {cluster: &clusterState{}}}

func TestParsePosition(t *testing.T) {
	var shards []string
	for i := range maxPositionShards + 1 {
		shards = append(shards, strconv.FormatInt(int64(i), 36)+".1-0")
	}
	most, tooMany := strings.Join(shards[:maxPositionShards], "~"), strings.Join(shards, "~")
	soon := strconv.FormatInt(time.Now().Add(time.Minute).UnixMilli(), 10) + "-0"
	tooLate := strconv.FormatInt(time.Now().Add(2*time.Hour).UnixMilli(), 10) + "-0"
	for _, tc := range []struct {
		mode, in string
		want     string // "": invalid
	}{
		{"single", "1700000000000-0", "1700000000000-0"},
		{"single", "0-0", "0-0"},
		{"single", "a.1-0", ""},
		{"single", "1700000000000", ""},
		{"single", "", ""},
		{"cluster", "0.1-2~Zz9.3-4~a.5-6", "0.1-2~Zz9.3-4~a.5-6"},
		{"cluster", "a.5-6~0.1-2", "0.1-2~a.5-6"},                      // in the order of the tags
		{"cluster", "a.18446744073709551615-18446744073709551615", ""}, // never written: far ahead of the clock
		{"single", soon, soon},                                         // Redis's clock may run a little ahead of lockd's
		{"single", tooLate, ""},                                        // but an id hours ahead was never written
		{"cluster", "0.1-0~a." + tooLate, ""},
		{"cluster", "1700000000000-0", ""}, // a plain id names no shard
		{"cluster", "a.1-0~a.2-0", ""},     // a shard twice
		{"cluster", "abcd.1-0", ""},
		{"cluster", "a{.1-0", ""},
		{"cluster", ".1-0", ""},
		{"cluster", "a.1-0~", ""},
		{"cluster", "a.1-0.2", ""},
		{"cluster", "a.18446744073709551616-0", ""},
		{"cluster", "a.-1-0", ""},
		{"cluster", most, ""}, // in the order of the tags: checked below
		{"cluster", tooMany, ""},
		{"cluster", "", ""},
	} {
		t.Run(tc.mode+"/"+tc.in[:min(len(tc.in), 40)], func(t *testing.T) {
			p, err := modes[tc.mode].ParsePosition(tc.in)
			if tc.in == most {
				if err != nil || p.Len() != maxPositionShards {
					t.Errorf("%d shards: %v", p.Len(), err)
				}
				return
			}
			if tc.want == "" {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Errorf("got %s, %v; want ErrInvalidArgument", p, err)
				}
				return
			}
			if err != nil || p.String() != tc.want {
				t.Errorf("got %s, %v; want %s", p, err, tc.want)
			}
		})
	}
}

func TestPositionFillBeyondJoin(t *testing.T) {
	parse := func(s string) Position {
		t.Helper()
		p, err := modes["cluster"].ParsePosition(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := parse("a.100000-3~b.5000-1")
	for _, tc := range []struct {
		name string
		got  Position
		want string
	}{
		// A shard p does not name: from positionSlack before its newest.
		{"fill", p.Fill([]string{"a", "c", "b", "0"}), "0.90000-0~a.100000-3~b.5000-1~c.90000-0"},
		{"fill early", parse("a.4000-0").Fill([]string{"b"}), "a.4000-0~b.0-0"},
		{"beyond", p.Beyond(parse("a.100000-2~b.5000-1")), "a.100000-3"},
		{"beyond missing", p.Beyond(parse("b.6000-0")), "a.100000-3"},
		{"join", p.Join(parse("a.99999-9~b.5000-2~c.1-0")), "a.100000-3~b.5000-2~c.1-0"},
		{"with", p.With("b", EventID{7, 7}).With("c", EventID{1, 0}), "a.100000-3~b.7-7~c.1-0"},
		{"without", p.Without("a").Without("x"), "b.5000-1"},
	} {
		if tc.got.String() != tc.want {
			t.Errorf("%s: got %s, want %s", tc.name, tc.got, tc.want)
		}
	}
	if p.String() != "a.100000-3~b.5000-1" {
		t.Errorf("the methods changed p: %s", p)
	}
	if p.Beyond(p).Len() != 0 {
		t.Errorf("p is beyond itself: %s", p.Beyond(p))
	}
}

// FuzzParsePosition: whatever a client sends, a Position that parses
// writes back to what parses to the same.
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"1700000000000-0", "0.1-2~Zz9.3-4", "a.1-0~a.2-0", "~", "a..1-0", "a.1-0~b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for mode, m := range modes {
			p, err := m.ParsePosition(s)
			if err != nil {
				continue
			}
			q, err := m.ParsePosition(p.String())
			if err != nil || q.String() != p.String() || q.Len() != p.Len() {
				t.Errorf("%s: %q parsed to %s, which parses to %s, %v", mode, s, p, q, err)
			}
		}
	})
}
