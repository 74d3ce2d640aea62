package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// durablePkg is the package the tests build and run.
	durablePkg = "github.com/durable-go/durable/cmd/durable"

	// Liveness deadlines (never performance limits).
	buildTimeout    = 5 * time.Minute
	listenTimeout   = 20 * time.Second // until "listening on <addr>"
	exitTimeout     = 10 * time.Second // SIGTERM → exit (DESIGN.md §5), SIGKILL → reaped
	requestTimeout  = 10 * time.Second // one HTTP request
	maxResponseBody = 1 << 20
)

// binDir holds the built binary for the whole run; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "durable-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir for the binary:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// durableBinary builds the durable binary once per test run (on first use)
// and returns its path. The binary is built without -race whatever the
// test binary was built with.
func durableBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("e2e: the tests build the durable binary with the go command, which is not on PATH: %w", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		out := filepath.Join(binDir, "durable")
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, durablePkg)
		start := time.Now()
		output, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("e2e: go build -o %s %s failed after %v: %v\n%s",
				out, durablePkg, time.Since(start).Round(time.Millisecond), err, output)
			return
		}
		binPath = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// server is one running `durable serve` process.
type server struct {
	t      testing.TB
	dir    string
	base   string // "http://127.0.0.1:port", set once it listens
	cmd    *exec.Cmd
	stdout *lineWatcher
	stderr *lockedBuffer
	client *http.Client

	done    chan struct{} // closed when the process has been reaped
	waitErr error         // cmd.Wait's result; read after done
}

// startServer starts `durable serve --dir dir --addr 127.0.0.1:0` and waits
// until it listens. The process is killed on cleanup if it still runs.
func startServer(t testing.TB, dir string, flags ...string) *server {
	t.Helper()
	s := launch(t, dir, flags...)
	if err := s.waitListening(); err != nil {
		t.Fatal(err)
	}
	return s
}

// launch starts the process without waiting for it to listen; flags are
// added to serve's.
func launch(t testing.TB, dir string, flags ...string) *server {
	t.Helper()
	bin := durableBinary(t)
	s := &server{
		t:      t,
		dir:    dir,
		stdout: newLineWatcher("listening on "),
		stderr: &lockedBuffer{},
		done:   make(chan struct{}),
	}
	s.cmd = exec.Command(bin, append([]string{"serve", "--dir", dir, "--addr", "127.0.0.1:0"}, flags...)...)
	s.cmd.Stdout = s.stdout
	s.cmd.Stderr = s.stderr
	s.cmd.WaitDelay = 5 * time.Second // never hang on the output pipes
	dieWithTest(s.cmd)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if !s.exited() {
			s.cmd.Process.Signal(syscall.SIGKILL)
			select {
			case <-s.done:
			case <-time.After(exitTimeout):
				t.Errorf("cleanup: pid %d not reaped %v after SIGKILL", s.cmd.Process.Pid, exitTimeout)
			}
		}
		if s.client != nil {
			s.client.CloseIdleConnections()
		}
		if t.Failed() {
			t.Logf("server pid %d on %s: stderr:\n%s", s.cmd.Process.Pid, dir, tail(s.stderr.String(), 8000))
		}
	})
	return s
}

// waitListening reads the address from the "listening on" line.
func (s *server) waitListening() error {
	timer := time.NewTimer(listenTimeout)
	defer timer.Stop()
	select {
	case <-s.stdout.found:
	case <-s.done:
		// The line may have come just before the exit.
		select {
		case <-s.stdout.found:
		default:
			return fmt.Errorf("durable serve exited (%v) before it printed \"listening on\"; stdout:\n%s\nstderr:\n%s",
				s.waitErr, s.stdout.String(), s.stderr.String())
		}
	case <-timer.C:
		return fmt.Errorf("durable serve printed no \"listening on\" line within %v; stdout:\n%s\nstderr:\n%s",
			listenTimeout, s.stdout.String(), s.stderr.String())
	}
	addr := s.stdout.value()
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		return fmt.Errorf("durable serve printed %q; want listening on 127.0.0.1:<port>", "listening on "+addr)
	}
	s.base = "http://" + addr
	s.client = newClient()
	return nil
}

// newClient returns a client for loopback only: no proxy, no redirects
// followed (the tests look at the status the server gave), bounded.
func newClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        100,
			MaxIdleConnsPerHost: 100,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       requestTimeout,
	}
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and requires the process to exit 0 within 10 s.
func (s *server) stop() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("SIGTERM pid %d: %v (did it exit by itself?)", s.cmd.Process.Pid, err)
	}
	start := time.Now()
	select {
	case <-s.done:
	case <-time.After(exitTimeout):
		s.t.Fatalf("durable serve did not exit within %v of SIGTERM", exitTimeout)
	}
	if s.waitErr != nil {
		s.t.Fatalf("durable serve after SIGTERM: %v (want exit status 0, after %v)", s.waitErr, time.Since(start).Round(time.Millisecond))
	}
	s.client.CloseIdleConnections()
}

// kill sends SIGKILL and waits until the process is reaped. It reports an
// error if the process had ended by itself before the signal.
func (s *server) kill() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Errorf("SIGKILL pid %d: %v", s.cmd.Process.Pid, err)
	}
	select {
	case <-s.done:
	case <-time.After(exitTimeout):
		s.t.Fatalf("pid %d not reaped %v after SIGKILL", s.cmd.Process.Pid, exitTimeout)
	}
	var ee *exec.ExitError
	if errors.As(s.waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			s.client.CloseIdleConnections()
			return
		}
	}
	s.t.Errorf("durable serve ended by itself (%v), not by our SIGKILL", s.waitErr)
}

// response is one complete HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request and reads the whole response; failing to get one
// is fatal.
func (s *server) do(method, path string) response {
	s.t.Helper()
	r, err := s.tryDo(method, path)
	if err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (s *server) tryDo(method, path string) (response, error) {
	return s.tryDoBody(method, path, "")
}

// tryDoBody is tryDo with a JSON body.
func (s *server) tryDoBody(method, path, body string) (response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		return response{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return response{}, fmt.Errorf("%s %s: reading the body: %w", method, path, err)
	}
	return response{resp.StatusCode, resp.Header, got}, nil
}

// counterValue decodes a counter response body {"value": N}.
func counterValue(body []byte) (int64, error) {
	var v struct {
		Value *int64 `json:"value"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return 0, fmt.Errorf("body %q is not {\"value\": N}: %v", body, err)
	}
	if v.Value == nil {
		return 0, fmt.Errorf("body %q has no \"value\"", body)
	}
	return *v.Value, nil
}

// get returns the counter's value by GET /counter/{name}.
func (s *server) get(name string) int64 {
	s.t.Helper()
	r := s.do(http.MethodGet, "/counter/"+name)
	if r.status != http.StatusOK {
		s.t.Fatalf("GET /counter/%s: %d %s; want 200", name, r.status, r.body)
	}
	v, err := counterValue(r.body)
	if err != nil {
		s.t.Fatalf("GET /counter/%s: %v", name, err)
	}
	return v
}

// increment posts one increment and returns the new value.
func (s *server) increment(name string) int64 {
	s.t.Helper()
	r := s.do(http.MethodPost, "/counter/"+name+"/increment")
	if r.status != http.StatusOK {
		s.t.Fatalf("POST /counter/%s/increment: %d %s; want 200", name, r.status, r.body)
	}
	v, err := counterValue(r.body)
	if err != nil {
		s.t.Fatalf("POST /counter/%s/increment: %v", name, err)
	}
	return v
}

// lineWatcher collects a process's stdout and picks out the rest of the
// first line that starts with prefix.
type lineWatcher struct {
	prefix string
	found  chan struct{} // closed once the line has been seen

	mu    sync.Mutex
	all   bytes.Buffer
	line  []byte // the current, unfinished line
	match string
}

func newLineWatcher(prefix string) *lineWatcher {
	return &lineWatcher{prefix: prefix, found: make(chan struct{})}
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.all.Len() < maxResponseBody {
		w.all.Write(p)
	}
	for _, c := range p {
		if c != '\n' {
			if len(w.line) < 4096 {
				w.line = append(w.line, c)
			}
			continue
		}
		line := strings.TrimSuffix(string(w.line), "\r")
		w.line = w.line[:0]
		if w.match == "" && strings.HasPrefix(line, w.prefix) {
			w.match = strings.TrimSpace(strings.TrimPrefix(line, w.prefix))
			close(w.found)
		}
	}
	return len(p), nil
}

func (w *lineWatcher) value() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.match
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.all.String()
}

// lockedBuffer is a bytes.Buffer safe for the exec copier and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 8<<20 {
		return len(p), nil // enough to diagnose; keep memory bounded
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
