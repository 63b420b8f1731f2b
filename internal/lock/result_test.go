package lock

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestResultOf: every error the richer grants add has a word of its own
// for the metrics, wrapped or not.
func TestResultOf(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "granted"},
		{&LockedError{}, "locked"},
		{&KindMismatchError{Kind: KindSemaphore}, "kind_mismatch"},
		{fmt.Errorf("acquire: %w", &KindMismatchError{Kind: KindLock}), "kind_mismatch"},
		{&LimitMismatchError{Limit: 3}, "limit_mismatch"},
		{&LockDelayError{Until: time.Now()}, "lock_delay"},
		{&kindError{ErrUnsupported, errors.New("quorum mode")}, "unsupported"},
		{invalid("limit 0 is outside 1 to 1000"), "invalid"},
		{context.Canceled, "canceled"},
		{errors.New("boom"), "unavailable"},
	} {
		if got := resultOf(tc.err); got != tc.want {
			t.Errorf("resultOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	if got := resultOf(&KindMismatchError{Kind: KindSemaphore}, "released"); got != "kind_mismatch" {
		t.Errorf("release's kind mismatch: %q", got)
	}
}
