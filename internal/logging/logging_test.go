package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTextLooksLikeTheREADME(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "text")
	log.Info("Lock acquired for resource my-key-1, performing critical operation")
	log.Info(AccessMessage,
		KeyStatus, 500, KeySeconds, 4.719088348, KeyClientIP, "172.19.0.1",
		KeyMethod, "GET", KeyPath, "/lock?resource_id=my-key-1")
	log.With("node", 0).Info("Redis unreachable, retrying", "err", errors.New("dial tcp: refused"), "addr", "localhost:6379")
	log.Debug("not shown")

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{
		`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d Lock acquired for resource my-key-1, performing critical operation$`,
		`^\[GIN\] \d{4}/\d\d/\d\d - \d\d:\d\d:\d\d \| 500 \| 4\.719088348s \| 172\.19\.0\.1 \| GET "/lock\?resource_id=my-key-1"$`,
		`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d Redis unreachable, retrying node=0 err="dial tcp: refused" addr=localhost:6379$`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d = %q, want match for %s", i, lines[i], re)
		}
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "json").Info(AccessMessage, KeyStatus, 200, KeySeconds, (30 * time.Second).Seconds())
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON: %q", buf.String())
	}
	if rec["msg"] != AccessMessage || rec[KeyStatus] != float64(200) || rec["level"] != slog.LevelInfo.String() {
		t.Fatalf("got %v", rec)
	}
}
