package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	got, err := Load(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Port: 8080, RedisAddr: "localhost:6379", RedisDB: 0,
		LockExpiry: 30 * time.Second, CriticalSection: 30 * time.Second,
		LogFormat: "text", ShutdownTimeout: 10 * time.Second,
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestLoadValues(t *testing.T) {
	got, err := Load(env(map[string]string{
		"PORT": "8081", "REDIS_ADDR": "redis:6379", "REDIS_PASSWORD": "password",
		"REDIS_DB": "1", "LOCK_EXPIRY": "2s", "CRITICAL_SECTION_DURATION": "250ms",
		"LOG_FORMAT": "JSON", "SHUTDOWN_TIMEOUT": "3s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Port: 8081, RedisAddr: "redis:6379", RedisPassword: "password", RedisDB: 1,
		LockExpiry: 2 * time.Second, CriticalSection: 250 * time.Millisecond,
		LogFormat: "json", ShutdownTimeout: 3 * time.Second,
	}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestLoadErrorsNameTheVariable(t *testing.T) {
	tests := []struct{ name, value string }{
		{"PORT", "http"},
		{"PORT", "70000"},
		{"PORT", "-1"},
		{"REDIS_ADDR", "localhost"},
		{"REDIS_ADDR", "localhost:abc"},
		{"REDIS_DB", "one"},
		{"REDIS_DB", "-1"},
		{"LOCK_EXPIRY", "30"},
		{"LOCK_EXPIRY", "abc"},
		{"LOCK_EXPIRY", "500ms"},
		{"LOCK_EXPIRY", "48h"},
		{"CRITICAL_SECTION_DURATION", "-1s"},
		{"CRITICAL_SECTION_DURATION", "forever"},
		{"LOG_FORMAT", "xml"},
		{"SHUTDOWN_TIMEOUT", "10"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{tt.name: tt.value}))
			if err == nil {
				t.Fatalf("Load accepted %s=%q", tt.name, tt.value)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.name) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q should be one line naming %s", msg, tt.name)
			}
		})
	}
}

func TestLoadNeverEchoesThePassword(t *testing.T) {
	_, err := Load(env(map[string]string{"REDIS_PASSWORD": "s3cret", "PORT": "x"}))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("got %v", err)
	}
}
