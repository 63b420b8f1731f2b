package safety

import (
	"time"

	"golang.org/x/sys/unix"
)

// Clock gives every recorded time as an offset from one base on
// CLOCK_MONOTONIC. The harness passes its base to the client processes it
// starts, so their times and its own line up: Go's time.Since cannot cross a
// process boundary, and wall-clock time may step.
type Clock struct {
	Base int64 // CLOCK_MONOTONIC nanoseconds
}

// NewClock returns a clock whose zero is now.
func NewClock() Clock { return Clock{Base: monotonicNow()} }

// Now is the time since the base.
func (c Clock) Now() time.Duration { return time.Duration(monotonicNow() - c.Base) }

func monotonicNow() int64 {
	var ts unix.Timespec
	// CLOCK_MONOTONIC cannot fail on Linux with a valid pointer.
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
