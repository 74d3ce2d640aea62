package browser

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Liveness deadlines, never performance limits.
const (
	buildTimeout  = 5 * time.Minute
	listenTimeout = 20 * time.Second
	browseTimeout = 2 * time.Minute
)

const token = "browser-test-token-0123456789"

// chromium finds the browser: $CHROMIUM, else Debian's chromium (or a
// Chrome) on PATH.
func chromium(t *testing.T) string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium on this machine (chromium, chromium-browser, google-chrome, or $CHROMIUM): " +
		"scripts/test.sh installs Debian's chromium package when it can (as root, with apt-get); " +
		"install it to run the storage browser's end-to-end test")
	return ""
}

// server is a running `durable serve` with the example apps and the admin
// address.
type server struct {
	app, admin string
	cmd        *exec.Cmd
	out        *bytes.Buffer
}

// startServer builds the durable binary from the repository and starts it.
func startServer(t *testing.T) *server {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "durable")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/durable")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/durable: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--dir", t.TempDir(), "--addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--admin-token", token)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, out: new(bytes.Buffer)}
	cmd.Stderr = s.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	deadline := time.After(listenTimeout)
	for s.app == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("durable serve exited before listening; stderr:\n%s", s.out)
			}
			if a, ok := strings.CutPrefix(l, "admin on "); ok {
				s.admin = "http://" + a
			}
			if a, ok := strings.CutPrefix(l, "listening on "); ok {
				s.app = "http://" + a
			}
		case <-deadline:
			t.Fatalf("durable serve did not listen within %v; stderr:\n%s", listenTimeout, s.out)
		}
	}
	if s.admin == "" {
		t.Fatal("no \"admin on ADDR\" line before \"listening on\"")
	}
	return s
}

// post sends one request to the app and checks its status.
func (s *server) post(t *testing.T, path, body string) {
	t.Helper()
	resp, err := http.Post(s.app+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %d", path, resp.StatusCode)
	}
}

// The operator's walk through the storage browser in a real browser: sign
// in, pick a namespace, open an object, see its tables, usage and alarm,
// open a table's rows, run a read-only query, have a write refused; a
// screenshot of the result, checked not blank.
func TestStorageBrowser(t *testing.T) {
	exe := chromium(t)
	s := startServer(t)
	s.post(t, "/seats/F1/book", `{"seat":"1A","passenger":"ann"}`)
	s.post(t, "/seats/F1/book", `{"seat":"2C","passenger":"bob"}`)
	// 105 counters: more than one page of the object listing (100).
	for i := range 105 {
		s.post(t, fmt.Sprintf("/counter/c%03d/increment", i), "")
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // root in a container has no user namespace for the sandbox
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	var logs sync.Map
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(f string, a ...any) { logs.Store(fmt.Sprintf(f, a...), true) }))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, browseTimeout)
	defer cancel()

	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("%s: %v\npage:\n%s\nserver:\n%s", name, err, html, s.out)
		}
	}
	// rowsOf returns the first cell's text of each row sel matches.
	rowsOf := func(sel string) []string {
		t.Helper()
		var ids []string
		nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(sel+" td.id a")))
		if err != nil {
			t.Fatalf("rows %s: %v", sel, err)
		}
		for _, n := range nodes {
			if len(n.Children) > 0 {
				ids = append(ids, n.Children[0].NodeValue)
			}
		}
		return ids
	}
	text := func(id string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
		if err != nil {
			t.Fatalf("the text of #%s: %v", id, err)
		}
		return v
	}
	step("sign in",
		chromedp.Navigate(s.admin+"/admin"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.ID("namespaces")),
	)
	namespaces := text("namespaces")
	for _, ns := range []string{"SEATS", "COUNTER", "CHAT"} {
		if !strings.Contains(namespaces, ns) {
			t.Errorf("namespaces %q lack %s", namespaces, ns)
		}
	}
	step("page through a namespace",
		chromedp.Click(chromedp.Search(`//a[text()="COUNTER"]`)),
		chromedp.WaitVisible(chromedp.ID("objects")),
	)
	first := rowsOf("#objects tbody tr")
	step("the next page",
		chromedp.Click(chromedp.ID("next")),
		chromedp.WaitVisible(chromedp.ID("objects")),
	)
	second := rowsOf("#objects tbody tr")
	if len(first) != 100 || len(second) != 5 {
		t.Errorf("pages of COUNTER: %d then %d rows, want 100 then 5", len(first), len(second))
	}
	seen := map[string]bool{}
	for _, id := range append(first, second...) {
		seen[id] = true
	}
	if len(seen) != 105 {
		t.Errorf("the two pages list %d distinct objects, want 105", len(seen))
	}
	step("back to the namespaces",
		chromedp.Click(chromedp.Search(`//header/nav/a[text()="Namespaces"]`)),
		chromedp.WaitVisible(chromedp.ID("namespaces")),
	)
	step("open a namespace and an object",
		chromedp.Click(chromedp.Search(`//a[text()="SEATS"]`)),
		chromedp.WaitVisible(chromedp.ID("objects")),
		chromedp.Click(chromedp.CSS(`#objects td.id a`)),
		chromedp.WaitVisible(chromedp.ID("schema")),
	)
	facts, usage, schema := text("facts"), text("usage"), text("schema")
	if !strings.Contains(facts, "F1") || !strings.Contains(facts, "live") || !strings.Contains(facts, "none") {
		t.Errorf("the object's facts %q: want its name F1, live, alarm none", facts)
	}
	if !regexp.MustCompile(`Requests\s+2\b`).MatchString(usage) {
		t.Errorf("usage %q: want the 2 bookings as requests (the page's own reads do not count)", usage)
	}
	if !strings.Contains(schema, "seats") || !strings.Contains(schema, "120") {
		t.Errorf("schema %q: want the table seats with 120 rows", schema)
	}
	objectPage, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	step("a table's rows",
		chromedp.Click(chromedp.Search(`//a[text()="seats"]`)),
		chromedp.WaitVisible(chromedp.ID("result")),
	)
	if rows := text("result"); !strings.Contains(rows, "10A") {
		t.Errorf("rows of seats %q: want seat 10A among the first 100", rows)
	}
	step("back to the object by its crumb",
		chromedp.Click(chromedp.Search(`//header/nav/a[last()]`)),
		chromedp.WaitVisible(chromedp.ID("query")),
	)
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err != nil || loc != objectPage {
		t.Errorf("the crumb led to %s (%v), want %s", loc, err, objectPage)
	}
	step("a read-only query",
		chromedp.SetValue(chromedp.CSS(`#query textarea`), "SELECT seat, passenger FROM seats WHERE passenger != '' ORDER BY seat"),
		chromedp.Click(chromedp.ID("run")),
		chromedp.WaitVisible(chromedp.ID("result")),
	)
	if result := text("result"); !strings.Contains(result, "1A") || !strings.Contains(result, "ann") || !strings.Contains(result, "bob") {
		t.Errorf("query result %q: want 1A ann and 2C bob", result)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	step("a write refused",
		chromedp.SetValue(chromedp.CSS(`#query textarea`), "UPDATE seats SET passenger = 'eve'"),
		chromedp.Click(chromedp.ID("run")),
		chromedp.WaitVisible(chromedp.ID("query-error")),
	)
	queryErr := text("query-error")
	if !strings.Contains(queryErr, "would write") {
		t.Errorf("a write through the page: %q, want a refusal", queryErr)
	}
	resp, err := http.Get(s.app + "/seats/F1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "eve") || !strings.Contains(string(body), `"1A":"ann"`) {
		t.Errorf("after the refused write the flight reads %s", body)
	}

	checkNotBlank(t, shot)
	if dir := os.Getenv("SCREENSHOT_DIR"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, "admin-browser.png"), shot, 0o644); err != nil {
			t.Errorf("SCREENSHOT_DIR: %v", err)
		}
	}
	logs.Range(func(k, _ any) bool { t.Logf("chromedp: %v", k); return true })
}

// checkNotBlank decodes the screenshot and checks that it shows a page:
// a real size, several colours, and a fair share of pixels that are not
// the background's.
func checkNotBlank(t *testing.T, shot []byte) {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("the screenshot does not decode: %v (%d bytes)", err, len(shot))
	}
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 300 {
		t.Fatalf("the screenshot is %dx%d", b.Dx(), b.Dy())
	}
	colours := map[[3]uint32]int{}
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 12, g >> 12, bl >> 12}]++
		}
	}
	var bg [3]uint32
	for c, n := range colours {
		if n > colours[bg] {
			bg = c
		}
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	other := total - colours[bg]
	if len(colours) < 8 || float64(other)/float64(total) < 0.02 {
		t.Errorf("the screenshot looks blank: %d colours, %.2f%% of pixels not the background", len(colours), 100*float64(other)/float64(total))
	}
	t.Logf("screenshot %dx%d: %d colours, %.1f%% of pixels not the background", b.Dx(), b.Dy(), len(colours), 100*float64(other)/float64(total))
}

var _ = png.Decode // the screenshot is a PNG (quality 100)
