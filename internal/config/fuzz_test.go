package config

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzLoad feeds arbitrary values to a few variables. Load must never
// panic, and its errors must never repeat an API token or the password of
// a Redis URL.
//
// Errors do repeat the other raw values (that is how they name what is
// wrong), so a secret is only looked for when it is distinctive: at least
// 12 letters and digits, mixing upper case, lower case and digits (no fixed
// wording of Load's looks like that), and not part of another value.
func FuzzLoad(f *testing.F) {
	f.Add("8080", "localhost:6379", false, "Tok3nAbcdefghij1234,SecondT0kenXyzw5678", "1h", "")
	f.Add("x", "redis://:PassW0rdSecret99@127.0.0.1:6379/0", true, "Sh0rtTok", "30s", "10m")
	f.Add("70000", "rediss://user:PassW0rdSecret99@h:1,rediss://user:PassW0rdSecret99@h:1", true, "", "2h", "1s")
	f.Add("0", "redis://u:Secr3tPasswordX@[::1", true, "Tok3nAbcdefghij1234 x", "", "")
	f.Add("", "a:1,a:1", false, "Tok3nAbcdefghij1234,", "-1s", "48h1s")
	f.Add(" 1 ", "host", false, "Tok3nAbcdefghij1234\tTok3nAbcdefghij1234", "1e3", "abc")
	f.Fuzz(func(t *testing.T, port, nodes string, urls bool, tokens, maxTTL, writeTimeout string) {
		env := map[string]string{
			"PORT": port, "API_TOKENS": tokens, "MAX_TTL": maxTTL, "HTTP_WRITE_TIMEOUT": writeTimeout,
		}
		public := []string{port, maxTTL, writeTimeout}
		var secrets []string
		if urls {
			env["REDIS_URLS"] = nodes
			for _, e := range strings.Split(nodes, ",") {
				u, err := url.Parse(strings.TrimSpace(e))
				if err != nil {
					// What would be the password of a URL that does not parse.
					_, rest, _ := strings.Cut(e, "://")
					if userinfo, host, ok := cutLast(rest, "@"); ok {
						_, pw, _ := strings.Cut(userinfo, ":")
						secrets = append(secrets, pw)
						public = append(public, host)
					}
					continue
				}
				if u.User == nil {
					public = append(public, e)
					continue
				}
				if pw, ok := u.User.Password(); ok {
					secrets = append(secrets, pw)
				}
				public = append(public, u.Host, u.User.Username())
			}
		} else {
			env["REDIS_ADDRS"] = nodes
			public = append(public, nodes)
		}
		secrets = append(secrets, strings.Split(tokens, ",")...)
		secrets = append(secrets, strings.TrimSpace(tokens))

		_, err := Load(func(k string) string { return env[k] })
		if err == nil {
			return
		}
		for _, s := range secrets {
			s = strings.TrimSpace(s)
			if distinctive(s, public) && strings.Contains(err.Error(), s) {
				t.Fatalf("the error repeats the secret %q: %v", s, err)
			}
		}
	})
}

func distinctive(s string, public []string) bool {
	if len(s) < 12 {
		return false
	}
	var upper, lower, digit bool
	for _, c := range s {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			return false
		}
	}
	for _, p := range public {
		if strings.Contains(p, s) {
			return false
		}
	}
	return upper && lower && digit
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
