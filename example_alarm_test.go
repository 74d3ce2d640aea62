package durable_test

import (
	"context"
	"fmt"
	"time"

	"github.com/durable-go/durable"
)

// Session is an object that deletes itself after a time to live: each
// Touch pushes its alarm back, and the alarm wipes the object.
type Session struct {
	st  *durable.State
	ttl time.Duration
}

func (s *Session) Touch(ctx context.Context, user string) (bool, error) {
	if err := s.st.Storage().Put("user", user); err != nil {
		return false, err
	}
	return true, s.st.Storage().SetAlarm(time.Now().Add(s.ttl))
}

func (s *Session) User(ctx context.Context) (string, error) {
	var u string
	_, err := s.st.Storage().Get("user", &u)
	return u, err
}

// Alarm runs when the session has not been touched for ttl: DeleteAll
// removes its data (and its alarm) atomically.
func (s *Session) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	return s.st.Storage().DeleteAll()
}

// A TTL object: it deletes itself with an alarm when it has not been used
// for a while (the platform's pattern, spec §18b).
func ExampleAlarmer() {
	ctx := context.Background()
	rt, _ := durable.Open(durable.Config{})
	defer rt.Close(ctx)
	sessions := durable.Define(rt, "SESSION", func(st *durable.State) (*Session, error) {
		return &Session{st: st, ttl: 100 * time.Millisecond}, nil
	})
	s := sessions.GetByName("token-123")
	durable.Call(ctx, s, (*Session).Touch, "alice")
	u, _ := durable.Call0(ctx, s, (*Session).User)
	fmt.Println("before:", u)

	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if u, _ := durable.Call0(ctx, s, (*Session).User); u == "" {
			break
		}
	}
	u, _ = durable.Call0(ctx, s, (*Session).User)
	fmt.Printf("after: %q\n", u)
	// Output:
	// before: alice
	// after: ""
}
