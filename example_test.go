package durable_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/durable-go/durable"
)

// Account keeps a balance in SQL.
type Account struct{ st *durable.State }

func NewAccount(st *durable.State) (*Account, error) {
	a := &Account{st: st}
	// Schema set-up runs before any call is served.
	err := st.BlockConcurrencyWhile(func(ctx context.Context) error {
		return st.Storage().Exec(`CREATE TABLE IF NOT EXISTS balance (id INTEGER PRIMARY KEY CHECK (id = 1), cents INTEGER NOT NULL)`).Err()
	})
	return a, err
}

func (a *Account) Deposit(ctx context.Context, cents int64) (int64, error) {
	row, err := a.st.Storage().Exec(`INSERT INTO balance VALUES (1, ?)
		ON CONFLICT(id) DO UPDATE SET cents = cents + excluded.cents RETURNING cents`, cents).One()
	if err != nil {
		return 0, err
	}
	return row["cents"].(int64), nil
}

var ErrInsufficient = errors.New("insufficient funds")

func (a *Account) Withdraw(ctx context.Context, cents int64) (int64, error) {
	var have int64
	if err := a.st.Storage().Exec(`SELECT coalesce(max(cents), 0) FROM balance`).Scan(&have); err != nil {
		return 0, err
	}
	if have < cents {
		return 0, fmt.Errorf("withdraw %d: %w", cents, ErrInsufficient)
	}
	return a.Deposit(ctx, -cents)
}

// ServeHTTP makes Account reachable by HTTP too.
func (a *Account) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var cents int64
	if err := a.st.Storage().Exec(`SELECT coalesce(max(cents), 0) FROM balance`).Scan(&cents); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "balance of %s: %d cents", a.st.ID().Name(), cents)
}

// The main flow: open a runtime, define a class, call an object by name.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "durable-example-*")
	defer os.RemoveAll(dir)

	rt, err := durable.Open(durable.Config{Dir: dir})
	if err != nil {
		panic(err)
	}
	defer rt.Close(ctx)
	accounts := durable.Define(rt, "ACCOUNT", NewAccount)

	alice := accounts.GetByName("alice")
	durable.Call(ctx, alice, (*Account).Deposit, int64(500))
	total, err := durable.Call(ctx, alice, (*Account).Deposit, int64(250))
	fmt.Println(total, err)
	// Output: 750 <nil>
}

// A stub is an http.Handler: front code routes requests into objects.
func ExampleStub_ServeHTTP() {
	ctx := context.Background()
	rt, _ := durable.Open(durable.Config{}) // Dir "": a temporary directory, removed on Close
	defer rt.Close(ctx)
	accounts := durable.Define(rt, "ACCOUNT", NewAccount)
	durable.Call(ctx, accounts.GetByName("bob"), (*Account).Deposit, int64(42))

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accounts.GetByName(r.URL.Query().Get("account")).ServeHTTP(w, r)
	}))
	defer srv.Close()
	res, _ := http.Get(srv.URL + "/?account=bob")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	fmt.Println(string(body))
	// Output: balance of bob: 42 cents
}

// IDs: stable names, random unique IDs, and parsing an ID's string.
func ExampleNamespace_IDFromString() {
	rt, _ := durable.Open(durable.Config{})
	defer rt.Close(context.Background())
	accounts := durable.Define(rt, "ACCOUNT", NewAccount)

	id := accounts.NewUniqueID()
	parsed, err := accounts.IDFromString(id.String())
	fmt.Println(parsed.Equal(id), err)

	_, err = accounts.IDFromString("not an id")
	fmt.Println(err)
	// Output:
	// true <nil>
	// durable: invalid Durable Object ID: must be 64 hex digits
}

// A method's error reaches the caller as a *durable.Error.
func ExampleError() {
	ctx := context.Background()
	rt, _ := durable.Open(durable.Config{})
	defer rt.Close(ctx)
	accounts := durable.Define(rt, "ACCOUNT", NewAccount)

	_, err := durable.Call(ctx, accounts.GetByName("carol"), (*Account).Withdraw, int64(100))
	var de *durable.Error
	if errors.As(err, &de) {
		fmt.Println(de.Message, "| remote:", de.Remote, "retryable:", de.Retryable)
	}
	// The method's own sentinel arrives as its message only: calls copy.
	fmt.Println(errors.Is(err, ErrInsufficient))
	// Output:
	// withdraw 100: insufficient funds | remote: true retryable: false
	// false
}
