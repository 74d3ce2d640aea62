package durable

import (
	"context"
	"time"
)

// Alarmer is implemented by a class that handles alarms: Alarm runs as a
// turn when the object's alarm comes due.
type Alarmer interface {
	Alarm(ctx context.Context, info AlarmInfo) error
}

// AlarmInfo describes an alarm delivery: RetryCount is 0 on the first
// attempt and counts the retries after failures.
type AlarmInfo struct {
	RetryCount int
	IsRetry    bool
}

// errAlarmsPending is returned until the alarm scheduler lands.
var errAlarmsPending = &Error{Message: "durable: alarms are not available yet in this version", Err: ErrNotImplemented}

// SetAlarm sets the object's alarm, replacing any.
func (s *Storage) SetAlarm(t time.Time) error { return errAlarmsPending }

// GetAlarm returns the object's alarm time (UTC), if one is set.
func (s *Storage) GetAlarm() (time.Time, bool, error) { return time.Time{}, false, errAlarmsPending }

// DeleteAlarm removes the object's alarm, if any.
func (s *Storage) DeleteAlarm() error { return errAlarmsPending }
