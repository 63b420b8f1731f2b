package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/metrics"
)

// A result outside the documented set is counted as "other", never as a new
// series; every result is counted by the kind asked for, a lock or a
// semaphore's permit.
func Example() {
	m := metrics.New()
	m.Acquired("lock", "granted", 3*time.Millisecond)
	m.Acquired("lock", "orders/42", time.Millisecond)
	m.Acquired("semaphore", "limit_mismatch", time.Millisecond)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "lockd_acquisitions_total{") {
			fmt.Print(line)
		}
	}
	// Output:
	// lockd_acquisitions_total{kind="lock",result="canceled"} 0
	// lockd_acquisitions_total{kind="lock",result="granted"} 1
	// lockd_acquisitions_total{kind="lock",result="invalid"} 0
	// lockd_acquisitions_total{kind="lock",result="kind_mismatch"} 0
	// lockd_acquisitions_total{kind="lock",result="limit_mismatch"} 0
	// lockd_acquisitions_total{kind="lock",result="lock_delay"} 0
	// lockd_acquisitions_total{kind="lock",result="locked"} 0
	// lockd_acquisitions_total{kind="lock",result="other"} 1
	// lockd_acquisitions_total{kind="lock",result="too_many_waiters"} 0
	// lockd_acquisitions_total{kind="lock",result="unavailable"} 0
	// lockd_acquisitions_total{kind="lock",result="unsupported"} 0
	// lockd_acquisitions_total{kind="semaphore",result="canceled"} 0
	// lockd_acquisitions_total{kind="semaphore",result="granted"} 0
	// lockd_acquisitions_total{kind="semaphore",result="invalid"} 0
	// lockd_acquisitions_total{kind="semaphore",result="kind_mismatch"} 0
	// lockd_acquisitions_total{kind="semaphore",result="limit_mismatch"} 1
	// lockd_acquisitions_total{kind="semaphore",result="lock_delay"} 0
	// lockd_acquisitions_total{kind="semaphore",result="locked"} 0
	// lockd_acquisitions_total{kind="semaphore",result="other"} 0
	// lockd_acquisitions_total{kind="semaphore",result="too_many_waiters"} 0
	// lockd_acquisitions_total{kind="semaphore",result="unavailable"} 0
	// lockd_acquisitions_total{kind="semaphore",result="unsupported"} 0
}
