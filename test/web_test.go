package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/visionmesh/vision/pkg/orchestrator"
	"github.com/visionmesh/vision/pkg/testimage"
)

// The web page in a real browser: headless Chromium (Debian's chromium)
// against the real orchestrator in dev mode (embedded NATS, one worker per
// task), driven with chromedp. Screenshots go to test/output/.

// findChromium returns the Chromium binary, or skips the test.
func findChromium(tb testing.TB) string {
	tb.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	tb.Skip("chromium is not installed (apt-get install -y chromium)")
	return ""
}

// startDevOrchestrator runs the orchestrator in process in dev mode with
// the given flags added, and shuts it down at the end of the test.
func startDevOrchestrator(tb testing.TB, args ...string) string {
	tb.Helper()
	all := append([]string{"-dev", "-dev-nats-port=-1", "-addr", "127.0.0.1:0"}, args...)
	cfg, err := orchestrator.ParseFlags(all, func(string) string { return "" })
	if err != nil {
		tb.Fatal(err)
	}
	if !cfg.Dev || cfg.DevNATSPort != -1 || cfg.Addr != "127.0.0.1:0" {
		tb.Fatalf("dev config: got dev %v port %d addr %s", cfg.Dev, cfg.DevNATSPort, cfg.Addr)
	}
	o, err := orchestrator.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := o.Shutdown(ctx); err != nil {
			tb.Errorf("orchestrator shutdown: %v", err)
		}
	})
	base := "http://" + o.Addr()
	waitReady(tb, base, 10*time.Second)
	return base
}

// browser is one headless Chromium with a fresh profile; it records the
// page's uncaught exceptions and console errors (a CSP violation is one).
type browser struct {
	ctx context.Context

	mu   sync.Mutex
	errs []string
}

func newBrowser(tb testing.TB) *browser {
	tb.Helper()
	bin := findChromium(tb)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Headless, // --headless
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1100, 1400),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &browser{ctx: ctx}
	// Start the browser now, so that a broken install fails here.
	if err := chromedp.Do(ctx); err != nil {
		cancelCtx()
		cancelAlloc()
		tb.Fatalf("start chromium %s: %v", bin, err)
	}
	messages := chromedp.Console(ctx)
	read := make(chan struct{})
	go func() {
		defer close(read)
		for m, err := range messages {
			if err != nil {
				return // the browser is closing
			}
			if m.IsException() || m.Type == chromedp.ConsoleError {
				b.mu.Lock()
				b.errs = append(b.errs, m.String())
				b.mu.Unlock()
			}
		}
	}()
	tb.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		<-read
	})
	return b
}

// do runs actions with a time limit.
func (b *browser) do(tb testing.TB, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb testing.TB, b *browser, expr string) T {
	tb.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// pageErrors returns the exceptions and console errors seen so far.
func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// screenshot saves the whole page as test/output/<name>.png.
func (b *browser) screenshot(tb testing.TB, name string) {
	tb.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll("output", 0o755); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join("output", name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("screenshot: test/%s", path)
}

// count returns the number of elements matching a CSS selector.
func (b *browser) count(tb testing.TB, selector string) int {
	tb.Helper()
	return eval[int](tb, b, fmt.Sprintf("document.querySelectorAll(%q).length", selector))
}

// text returns the text of the first element matching a CSS selector.
func (b *browser) text(tb testing.TB, selector string) string {
	tb.Helper()
	return eval[string](tb, b, fmt.Sprintf("(document.querySelector(%q) || {}).textContent || ''", selector))
}

// upload writes data to a file named name and gives it to the page's file
// input, as a person choosing it would.
func (b *browser) upload(tb testing.TB, name string, data []byte) {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	b.do(tb, "choose "+name, chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{path}))
}

func TestWebPage(t *testing.T) {
	b := newBrowser(t)
	base := startDevOrchestrator(t, "-analyzer", "simulate", "-work", "150ms")
	img := testimage.JPEG(640, 480, 85, 7)

	b.do(t, "open page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#drop")))
	// The worker pools come from GET /v1/workers: one replica per task.
	b.do(t, "worker pools", chromedp.WaitVisible(chromedp.CSS(`#pools tr[data-task="face"]`)))
	for _, task := range []string{"vehicle", "plate", "face"} {
		if got := b.text(t, fmt.Sprintf(`#pools tr[data-task=%q] td`, task)); got != "1" {
			t.Errorf("%s replicas: got %q, want 1", task, got)
		}
	}

	// Concurrent run.
	b.upload(t, "photo.jpg", img)
	b.do(t, "wait for the result", chromedp.WaitVisible(chromedp.CSS(`body[data-state="done"] .run[data-mode="concurrent"]`)))
	if n := b.count(t, `.run[data-mode="concurrent"] .task-bar[data-status="ok"]`); n != 3 {
		t.Errorf("concurrent timeline: got %d ok bars, want 3", n)
	}
	for _, sel := range []string{".run .bar.total", ".run .bar.ghost", `#photo[src^="blob:"]`, `.task[data-status="ok"]`} {
		if b.count(t, sel) == 0 {
			t.Errorf("no %s on the page", sel)
		}
	}
	if n := b.count(t, `.task[data-status="ok"]`); n != 3 {
		t.Errorf("task results: got %d ok, want 3", n)
	}
	if got := b.text(t, "#caption"); !strings.Contains(got, "640×480 jpeg") {
		t.Errorf("caption: got %q, want the image's size and format", got)
	}

	// The switch runs the same image in serial mode; both timelines stay.
	b.do(t, "serial switch", chromedp.Click(chromedp.CSS("label.switch")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-state="done"] .run[data-mode="serial"]`)))
	if n := b.count(t, `.run[data-mode="serial"] .task-bar[data-status="ok"]`); n != 3 {
		t.Errorf("serial timeline: got %d ok bars, want 3", n)
	}
	// Serial bars start one after another: each starts no earlier than the
	// previous one ends.
	lefts := eval[[]float64](t, b, `[...document.querySelectorAll('.run[data-mode="serial"] .task-bar')].map(e => e.getBoundingClientRect().left)`)
	for i := 1; i < len(lefts); i++ {
		if lefts[i] <= lefts[i-1] {
			t.Errorf("serial bars: bar %d starts at %.0fpx, not after bar %d at %.0fpx", i, lefts[i], i-1, lefts[i-1])
		}
	}
	// The pools count the jobs (the page asks again after each analysis
	// and every 5 s).
	waitFor(t, 15*time.Second, func() error {
		if got := b.text(t, `#pools tr[data-task="vehicle"] td:nth-of-type(2)`); got != "2" {
			return fmt.Errorf("vehicle jobs done: got %q, want 2", got)
		}
		return nil
	})
	b.screenshot(t, "web-timeline")
	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("page errors:\n%s", strings.Join(errs, "\n"))
	}

	// A file that is not an image: the service's 415 in words.
	b.upload(t, "fake.jpg", []byte("this is not an image, only text"))
	b.do(t, "wait for the error", chromedp.WaitVisible(chromedp.CSS(`body[data-state="error"] #error`)))
	if got := b.text(t, "#error"); !strings.Contains(got, "not an image") {
		t.Errorf("error text: got %q, want it to say the file is not an image", got)
	}
	b.screenshot(t, "web-error")
}

// modelServer answers every image like a detector would: a car and its
// plate, in the documented result shape.
func modelServer(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"detections": []map[string]any{
				{"label": "car", "score": 0.93, "box": map[string]float64{"x": 80, "y": 120, "w": 420, "h": 260}},
				{"label": "plate", "score": 0.88, "box": map[string]float64{"x": 240, "y": 320, "w": 120, "h": 36}, "text": "VSN 2026"},
			},
			"model":        map[string]string{"name": "test-detector", "version": "1"},
			"inference_ms": 12.5,
			"width":        640,
			"height":       480,
		})
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// TestWebPageBoxes: detections come back in the documented shape and are
// drawn over the image, plate text beside its box. The http analyzer kind
// forwards every task's job to a model server of the test's own.
func TestWebPageBoxes(t *testing.T) {
	b := newBrowser(t)
	base := startDevOrchestrator(t, "-analyzer", "http", "-http-url", modelServer(t), "-tasks", "vehicle,plate")

	b.do(t, "open page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#drop")))
	b.upload(t, "street.jpg", testimage.JPEG(640, 480, 85, 3))
	b.do(t, "wait for the result", chromedp.WaitVisible(chromedp.CSS(`body[data-state="done"] #view rect.box`)))

	// Two tasks, each answering a car and a plate.
	if n := b.count(t, "#view rect.box"); n != 4 {
		t.Errorf("boxes: got %d, want 4", n)
	}
	if n := b.count(t, "#view text.plate-text"); n != 2 {
		t.Errorf("plate texts: got %d, want 2", n)
	}
	plate := b.text(t, "#view text.plate-text")
	if plate != "VSN 2026" {
		t.Errorf("plate text: got %q, want %q", plate, "VSN 2026")
	}
	// The box is where the result says, in image pixels.
	box := eval[map[string]string](t, b, `(() => { const r = document.querySelector('#view g[data-task="vehicle"] rect.box');
		return {x: r.getAttribute('x'), y: r.getAttribute('y'), w: r.getAttribute('width'), h: r.getAttribute('height')}; })()`)
	if want := map[string]string{"x": "80", "y": "120", "w": "420", "h": "260"}; fmt.Sprint(box) != fmt.Sprint(want) {
		t.Errorf("car box: got %v, want %v", box, want)
	}
	if got := b.text(t, `.task[data-task="plate"]`); !strings.Contains(got, "VSN 2026") || !strings.Contains(got, "test-detector") {
		t.Errorf("plate result card: got %q, want the plate text and the model", got)
	}
	b.screenshot(t, "web-boxes")

	// A phone photo stored sideways with EXIF orientation 6: the browser
	// shows it upright, and the boxes (in stored pixels) turn with it.
	b.upload(t, "phone.jpg", withOrientation(testimage.JPEG(640, 480, 85, 3), 6))
	b.do(t, "wait for the turned result", chromedp.WaitVisible(chromedp.CSS(`body[data-state="done"] #view rect.box`)))
	if got := eval[[]int](t, b, `[document.querySelector('#photo').naturalWidth, document.querySelector('#photo').naturalHeight]`); fmt.Sprint(got) != "[480 640]" {
		t.Errorf("photo shown %v, want upright [480 640]", got)
	}
	box = eval[map[string]string](t, b, `(() => { const r = document.querySelector('#view g[data-task="vehicle"] rect.box');
		return {x: r.getAttribute('x'), y: r.getAttribute('y'), w: r.getAttribute('width'), h: r.getAttribute('height')}; })()`)
	if want := map[string]string{"x": "100", "y": "80", "w": "260", "h": "420"}; fmt.Sprint(box) != fmt.Sprint(want) {
		t.Errorf("car box of the upright photo: got %v, want %v", box, want)
	}
	b.screenshot(t, "web-boxes-exif")

	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("page errors:\n%s", strings.Join(errs, "\n"))
	}
}

// withOrientation returns jpg with an EXIF segment declaring orientation o,
// as phone cameras write them.
func withOrientation(jpg []byte, o byte) []byte {
	tiff := []byte{'M', 'M', 0, 42, 0, 0, 0, 8, // big endian, IFD0 at 8
		0, 1, // one entry: Orientation, SHORT, 1 value
		0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, o, 0, 0,
		0, 0, 0, 0} // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff...)
	n := len(payload) + 2
	out := append([]byte{}, jpg[:2]...) // SOI
	out = append(out, 0xFF, 0xE1, byte(n>>8), byte(n))
	out = append(out, payload...)
	return append(out, jpg[2:]...)
}

// With API keys the page asks for one, and works once it is typed in.
func TestWebPageAPIKey(t *testing.T) {
	b := newBrowser(t)
	base := startDevOrchestrator(t, "-analyzer", "simulate", "-work", "10ms", "-api-keys", "s3cret")

	b.do(t, "open page", chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS("#drop")))
	// GET /v1/workers answers 401: the key field appears.
	b.do(t, "key field", chromedp.WaitVisible(chromedp.CSS("#apikey")))
	b.upload(t, "photo.jpg", testimage.JPEG(320, 240, 85, 5))
	b.do(t, "refused", chromedp.WaitVisible(chromedp.CSS(`body[data-state="error"] #error`)))
	if got := b.text(t, "#error"); !strings.Contains(got, "API key") {
		t.Errorf("error text: got %q, want it to ask for an API key", got)
	}

	b.do(t, "type the key", chromedp.SendKeys(chromedp.CSS("#apikey"), "s3cret"))
	b.upload(t, "photo.jpg", testimage.JPEG(320, 240, 85, 5))
	b.do(t, "result", chromedp.WaitVisible(chromedp.CSS(`body[data-state="done"] .run[data-mode="concurrent"]`)))
	if n := b.count(t, `.task[data-status="ok"]`); n != 3 {
		t.Errorf("task results: got %d ok, want 3", n)
	}
	b.do(t, "pools", chromedp.WaitVisible(chromedp.CSS(`#pools tr[data-task="face"]`)))
}
