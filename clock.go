package durable

import "github.com/durable-go/durable/internal/clock"

// Clock is the runtime's source of time: idle eviction, hibernation,
// alarms and their retries, the BlockConcurrencyWhile overrun and
// auto-response timestamps all read it. Config.Clock nil means the
// machine's clock; tests pass durabletest.NewClock().
type Clock = clock.Clock

// Timer is a Clock's one-shot timer, as time.Timer: C delivers the time
// when it fires; Stop and Reset report as time.Timer's do.
type Timer = clock.Timer
