package metrics_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/metrics"
)

// A result outside the documented set is counted as "other", never as a new
// series.
func Example() {
	m := metrics.New()
	m.Acquired("granted", 3*time.Millisecond)
	m.Acquired("orders/42", time.Millisecond)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "lockd_acquisitions_total{") {
			fmt.Print(line)
		}
	}
	// Output:
	// lockd_acquisitions_total{result="canceled"} 0
	// lockd_acquisitions_total{result="granted"} 1
	// lockd_acquisitions_total{result="invalid"} 0
	// lockd_acquisitions_total{result="kind_mismatch"} 0
	// lockd_acquisitions_total{result="limit_mismatch"} 0
	// lockd_acquisitions_total{result="lock_delay"} 0
	// lockd_acquisitions_total{result="locked"} 0
	// lockd_acquisitions_total{result="other"} 1
	// lockd_acquisitions_total{result="too_many_waiters"} 0
	// lockd_acquisitions_total{result="unavailable"} 0
	// lockd_acquisitions_total{result="unsupported"} 0
}
