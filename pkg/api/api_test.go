package api_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/testimage"
)

// fakeGatherer answers every task with a fixed status. The HTTP layer is
// tested against it; the real gatherer is tested against a real NATS server
// in pkg/gather and end to end in test/.
type fakeGatherer struct {
	status map[string]gather.Status
	mu     sync.Mutex
	last   gather.Job
}

func (f *fakeGatherer) Run(ctx context.Context, j gather.Job) []gather.Outcome {
	f.mu.Lock()
	f.last = j
	f.mu.Unlock()
	var out []gather.Outcome
	for _, t := range j.Tasks {
		st := f.status[t]
		if st == "" {
			st = gather.StatusOK
		}
		o := gather.Outcome{Task: t, Status: st, Attempts: 1, Elapsed: time.Millisecond}
		if st == gather.StatusOK {
			o.Result = json.RawMessage(`{"task":"` + t + `"}`)
		} else {
			o.Error = &gather.Error{Message: "no"}
		}
		out = append(out, o)
	}
	return out
}

type ready bool

func (r ready) IsConnected() bool { return bool(r) }

func newServer(t testing.TB, g api.Gatherer, tweak func(*api.Config)) *api.Server {
	t.Helper()
	cfg := api.Defaults()
	cfg.MaxBytes = 100 << 10
	cfg.MaxPixels = 1_000_000
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := api.New(cfg, g, ready(true), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func multipartBody(t testing.TB, field string, data []byte) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("note", "hello")
	if field != "" {
		fw, err := mw.CreateFormFile(field, "x.jpg")
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
	}
	mw.Close()
	return &b, mw.FormDataContentType()
}

// pngBomb is a PNG header declaring 50000x50000 pixels.
func pngBomb() []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], 50000)
	binary.BigEndian.PutUint32(ihdr[4:], 50000)
	ihdr[8], ihdr[9] = 8, 2
	binary.Write(&b, binary.BigEndian, uint32(13))
	chunk := append([]byte("IHDR"), ihdr...)
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

func do(t testing.TB, h http.Handler, target string, body io.Reader, ct string) (*http.Response, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, target, body)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	return resp, m
}

func TestAnalyzeBadInput(t *testing.T) {
	jpg := testimage.JPEG(64, 48, 80, 1)
	s := newServer(t, &fakeGatherer{}, nil)
	for _, tc := range []struct {
		name, target, ct string
		body             []byte
		multipartField   string
		status           int
		code             string
	}{
		{name: "empty body", target: "/v1/analyze", ct: "image/jpeg", status: 400, code: "empty_image"},
		{name: "not an image", target: "/v1/analyze", ct: "application/octet-stream", body: []byte("hello, world"), status: 415, code: "not_an_image"},
		{name: "truncated", target: "/v1/analyze", ct: "image/jpeg", body: jpg[:len(jpg)/2], status: 422, code: "truncated_image"},
		{name: "too large", target: "/v1/analyze", ct: "image/jpeg", body: make([]byte, 200<<10), status: 413, code: "too_large"},
		{name: "too many pixels", target: "/v1/analyze", ct: "image/png", body: pngBomb(), status: 422, code: "too_many_pixels"},
		{name: "multipart without file", target: "/v1/analyze", multipartField: "-", status: 400, code: "missing_file_field"},
		{name: "unknown task", target: "/v1/analyze?tasks=plate,cats", ct: "image/jpeg", body: jpg, status: 400, code: "bad_query"},
		{name: "bad timeout", target: "/v1/analyze?timeout=soon", ct: "image/jpeg", body: jpg, status: 400, code: "bad_query"},
		{name: "negative timeout", target: "/v1/analyze?timeout=-1s", ct: "image/jpeg", body: jpg, status: 400, code: "bad_query"},
		{name: "timeout over the cap", target: "/v1/analyze?timeout=1h", ct: "image/jpeg", body: jpg, status: 400, code: "bad_query"},
		{name: "unknown mode", target: "/v1/analyze?mode=parallel", ct: "image/jpeg", body: jpg, status: 400, code: "bad_query"},
		{name: "unsupported content type", target: "/v1/analyze", ct: "text/plain", body: jpg, status: 415, code: "unsupported_content_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(tc.body)
			ct := tc.ct
			if tc.multipartField != "" {
				body, ct = multipartBody(t, "", nil)
			}
			resp, m := do(t, s, tc.target, body, ct)
			if resp.StatusCode != tc.status || m["code"] != tc.code {
				t.Errorf("got %d %v, want %d %s", resp.StatusCode, m, tc.status, tc.code)
			}
			if msg, _ := m["error"].(string); msg == "" {
				t.Errorf("no error message in %v", m)
			}
		})
	}
}

func TestAnalyzeInputs(t *testing.T) {
	jpg := testimage.JPEG(64, 48, 80, 1)
	g := &fakeGatherer{}
	s := newServer(t, g, nil)
	for _, tc := range []struct {
		name string
		body func() (io.Reader, string)
	}{
		{"multipart file", func() (io.Reader, string) { return multipartBody(t, "file", jpg) }},
		{"multipart image", func() (io.Reader, string) { return multipartBody(t, "image", jpg) }},
		{"raw jpeg", func() (io.Reader, string) { return bytes.NewReader(jpg), "image/jpeg" }},
		{"octet-stream", func() (io.Reader, string) { return bytes.NewReader(jpg), "application/octet-stream" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := tc.body()
			resp, m := do(t, s, "/v1/analyze?tasks=face,plate&timeout=2s", body, ct)
			if resp.StatusCode != 200 {
				t.Fatalf("got %d %v, want 200", resp.StatusCode, m)
			}
			img := m["image"].(map[string]any)
			if img["width"] != 64.0 || img["height"] != 48.0 || img["format"] != "jpeg" || img["bytes"] != float64(len(jpg)) {
				t.Errorf("image facts: got %v", img)
			}
			if sha, _ := img["sha256"].(string); len(sha) != 64 {
				t.Errorf("sha256: got %q", sha)
			}
			if !bytes.Equal(g.last.Data, jpg) || g.last.Timeout != 2*time.Second || strings.Join(g.last.Tasks, ",") != "face,plate" {
				t.Errorf("job: got %d bytes, timeout %v, tasks %v", len(g.last.Data), g.last.Timeout, g.last.Tasks)
			}
			tasks := m["tasks"].(map[string]any)
			if len(tasks) != 2 || tasks["face"].(map[string]any)["status"] != "ok" {
				t.Errorf("tasks: got %v", tasks)
			}
		})
	}
}

func TestAnalyzeStatusCodes(t *testing.T) {
	jpg := testimage.JPEG(64, 48, 80, 1)
	for _, tc := range []struct {
		name   string
		status map[string]gather.Status
		want   int
	}{
		{"all ok", nil, 200},
		{"some failed", map[string]gather.Status{"face": gather.StatusError}, 207},
		{"none answered", map[string]gather.Status{"face": gather.StatusUnavailable, "plate": gather.StatusUnavailable, "vehicle": gather.StatusUnavailable}, 503},
		{"all timed out", map[string]gather.Status{"face": gather.StatusTimeout, "plate": gather.StatusTimeout, "vehicle": gather.StatusTimeout}, 504},
		{"all failed", map[string]gather.Status{"face": gather.StatusError, "plate": gather.StatusError, "vehicle": gather.StatusUnavailable}, 502},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t, &fakeGatherer{status: tc.status}, nil)
			resp, m := do(t, s, "/v1/analyze", bytes.NewReader(jpg), "image/jpeg")
			if resp.StatusCode != tc.want {
				t.Errorf("got %d, want %d (%v)", resp.StatusCode, tc.want, m)
			}
		})
	}
}

func TestAnalyzeNotReady(t *testing.T) {
	s, err := api.New(api.Defaults(), &fakeGatherer{}, ready(false), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	resp, m := do(t, s, "/v1/analyze", bytes.NewReader(testimage.JPEG(8, 8, 80, 1)), "image/jpeg")
	if resp.StatusCode != 503 || m["code"] != "nats_unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("got %d %v (Retry-After %q), want 503 nats_unavailable with Retry-After", resp.StatusCode, m, resp.Header.Get("Retry-After"))
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != 503 {
		t.Errorf("readyz: got %d, want 503", rec.Code)
	}
}

func TestAPIKeys(t *testing.T) {
	s := newServer(t, &fakeGatherer{}, func(c *api.Config) { c.APIKeys = []string{"k1", "k2"} })
	jpg := testimage.JPEG(8, 8, 80, 1)
	for _, tc := range []struct {
		name, header, value string
		want                int
	}{
		{"none", "", "", 401},
		{"wrong", "X-API-Key", "nope", 401},
		{"x-api-key", "X-API-Key", "k2", 200},
		{"bearer", "Authorization", "Bearer k1", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/v1/analyze", bytes.NewReader(jpg))
			req.Header.Set("Content-Type", "image/jpeg")
			if tc.header != "" {
				req.Header.Set(tc.header, tc.value)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("got %d, want %d", rec.Code, tc.want)
			}
		})
	}
	// Health endpoints stay open.
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != 200 {
		t.Errorf("healthz: got %d, want 200", rec.Code)
	}
}

// blockingGatherer holds every job until released, to fill the in-flight slots.
type blockingGatherer struct {
	fakeGatherer
	entered chan struct{}
	release chan struct{}
}

func (b *blockingGatherer) Run(ctx context.Context, j gather.Job) []gather.Outcome {
	b.entered <- struct{}{}
	<-b.release
	return b.fakeGatherer.Run(ctx, j)
}

func TestAnalyzeShedsOverLimit(t *testing.T) {
	g := &blockingGatherer{entered: make(chan struct{}, 2), release: make(chan struct{})}
	s := newServer(t, g, func(c *api.Config) { c.MaxInFlight = 2 })
	jpg := testimage.JPEG(8, 8, 80, 1)
	done := make(chan int, 2)
	for range 2 {
		go func() {
			resp, _ := do(t, s, "/v1/analyze", bytes.NewReader(jpg), "image/jpeg")
			done <- resp.StatusCode
		}()
	}
	<-g.entered
	<-g.entered
	resp, m := do(t, s, "/v1/analyze", bytes.NewReader(jpg), "image/jpeg")
	if resp.StatusCode != 503 || m["code"] != "overloaded" || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third request: got %d %v, want 503 overloaded with Retry-After", resp.StatusCode, m)
	}
	close(g.release)
	for range 2 {
		if code := <-done; code != 200 {
			t.Errorf("held request: got %d, want 200", code)
		}
	}
}

func TestAnalyzeShedsOverByteBudget(t *testing.T) {
	g := &blockingGatherer{entered: make(chan struct{}, 1), release: make(chan struct{})}
	jpg := testimage.JPEG(64, 48, 80, 1)
	s := newServer(t, g, func(c *api.Config) { c.MaxInFlightBytes = int64(len(jpg)) + 10 })
	done := make(chan int, 1)
	go func() {
		resp, _ := do(t, s, "/v1/analyze", bytes.NewReader(jpg), "image/jpeg")
		done <- resp.StatusCode
	}()
	<-g.entered
	// A second upload would pass the byte budget: shed, though slots are free.
	resp, m := do(t, s, "/v1/analyze", bytes.NewReader(jpg), "image/jpeg")
	if resp.StatusCode != 503 || m["code"] != "overloaded" {
		t.Errorf("second request: got %d %v, want 503 overloaded", resp.StatusCode, m)
	}
	close(g.release)
	if code := <-done; code != 200 {
		t.Errorf("first request: got %d, want 200", code)
	}
	// With the budget free again, the same upload is admitted.
	resp, _ = do(t, newServer(t, &fakeGatherer{}, func(c *api.Config) { c.MaxInFlightBytes = 1 }), "/v1/analyze", bytes.NewReader(jpg), "image/jpeg")
	if resp.StatusCode != 200 {
		t.Errorf("a lone upload over the budget: got %d, want 200 (never starve a single request)", resp.StatusCode)
	}
}
