package test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/visionmesh/vision/pkg/testimage"
)

// apiSystem is one NATS server, an orchestrator with five tasks and a
// worker process per task:
//   - vehicle, plate, face: answer ok after 20ms;
//   - broken: always fails (-fail-rate 1);
//   - slow: takes 3s, longer than the timeouts the tests ask for.
//
// A second orchestrator on the same server uses the prefix "nobody", on
// which no worker listens: every task it sends is unavailable.
type apiSystem struct {
	orch     *orch
	nobody   *orch
	workers  map[string]*wproc
	maxBytes int
}

func startAPISystem(t *testing.T) *apiSystem {
	t.Helper()
	ns := startNATS(t)
	url := ns.ClientURL()
	sys := &apiSystem{workers: map[string]*wproc{}, maxBytes: 64 << 10}
	for _, task := range []string{"vehicle", "plate", "face"} {
		sys.workers[task] = startWorker(t, url, task, "-work", "20ms")
	}
	sys.workers["broken"] = startWorker(t, url, "broken", "-work", "0s", "-fail-rate", "1")
	sys.workers["slow"] = startWorker(t, url, "slow", "-work", "3s")
	const tasks = "vehicle,plate,face,broken,slow"
	sys.orch = startOrchestrator(t, url, "-tasks", tasks, "-max-bytes", "65536")
	sys.nobody = startOrchestrator(t, url, "-tasks", tasks, "-prefix", "nobody")
	return sys
}

// TestE2EAPI drives the real orchestrator and worker binaries over a real
// NATS server: the HTTP status of every kind of answer, every bad input,
// and the accepted ways to upload an image with the documented JSON shape.
func TestE2EAPI(t *testing.T) {
	sys := startAPISystem(t)
	c := newClient(t, 8)
	img := testimage.JPEG(64, 48, 90, 1)

	t.Run("status codes", func(t *testing.T) {
		testStatusCodes(t, sys, c, img)
	})
	t.Run("bad input", func(t *testing.T) {
		testBadInput(t, sys, c, img)
	})
	t.Run("upload forms", func(t *testing.T) {
		testUploadForms(t, sys, c)
	})
	// Nothing above crashed or wedged the orchestrator.
	if sys.orch.exited() {
		t.Fatalf("orchestrator exited: %v", sys.orch.err)
	}
	if code, err := getStatus(sys.orch.url + "/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("healthz after the tests: got %d (%v), want %d", code, err, http.StatusOK)
	}
}

func testStatusCodes(t *testing.T, sys *apiSystem, c *http.Client, img []byte) {
	cases := []struct {
		name   string
		base   string
		query  string
		status int
		tasks  map[string]string // task -> status
		// the answer must come within this time (the deadline is 5s
		// unless the query says otherwise)
		within  time.Duration
		atLeast time.Duration
	}{
		{
			name: "all ok", base: sys.orch.url, query: "tasks=vehicle,plate,face",
			status: http.StatusOK, tasks: map[string]string{"vehicle": "ok", "plate": "ok", "face": "ok"},
			within: 3 * time.Second,
		},
		{
			name: "some failed", base: sys.orch.url, query: "tasks=vehicle,plate,broken",
			status: http.StatusMultiStatus, tasks: map[string]string{"vehicle": "ok", "plate": "ok", "broken": "error"},
			within: 3 * time.Second,
		},
		{
			name: "some timed out", base: sys.orch.url, query: "tasks=vehicle,slow&timeout=300ms",
			status: http.StatusMultiStatus, tasks: map[string]string{"vehicle": "ok", "slow": "timeout"},
			within: 3 * time.Second, atLeast: 290 * time.Millisecond,
		},
		{
			name: "none answered", base: sys.nobody.url, query: "",
			status: http.StatusServiceUnavailable,
			tasks: map[string]string{"vehicle": "unavailable", "plate": "unavailable", "face": "unavailable",
				"broken": "unavailable", "slow": "unavailable"},
			within: time.Second, // the deadline is 5s: no-responders answer at once
		},
		{
			name: "all timed out", base: sys.orch.url, query: "tasks=slow&timeout=300ms",
			status: http.StatusGatewayTimeout, tasks: map[string]string{"slow": "timeout"},
			within: 3 * time.Second, atLeast: 290 * time.Millisecond,
		},
		{
			name: "all failed", base: sys.orch.url, query: "tasks=broken",
			status: http.StatusBadGateway, tasks: map[string]string{"broken": "error"},
			within: 3 * time.Second,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := postImage(t, c, tc.base, tc.query, raw("image/jpeg", img))
			if a.Status != tc.status {
				t.Fatalf("status: got %d, want %d; body %s", a.Status, tc.status, a.Body)
			}
			an := a.analysis(t)
			got := map[string]string{}
			for name, tr := range an.Tasks {
				got[name] = tr.Status
				if tr.Status != "ok" && (tr.Error == nil || tr.Error.Message == "") {
					t.Errorf("task %s is %s without an error message: %s", name, tr.Status, a.Body)
				}
			}
			if !mapsEqual(got, tc.tasks) {
				t.Errorf("tasks: got %v, want %v", got, tc.tasks)
			}
			if a.Elapsed > tc.within {
				t.Errorf("answered after %v, want within %v", a.Elapsed, tc.within)
			}
			if a.Elapsed < tc.atLeast {
				t.Errorf("answered after %v, want at least %v (the timeout)", a.Elapsed, tc.atLeast)
			}
			if tc.status == http.StatusServiceUnavailable && a.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if tr, ok := an.Tasks["broken"]; ok && tr.Status == "error" && (tr.Error == nil || tr.Error.Code != "500") {
				t.Errorf("broken task error: got %+v, want code 500", tr.Error)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// pngHeader returns a PNG that declares width x height pixels but holds no
// pixel data: a decompression bomb's header.
func pngHeader(width, height uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		_ = binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		_ = binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], width)
	binary.BigEndian.PutUint32(ihdr[4:], height)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

func testBadInput(t *testing.T, sys *apiSystem, c *http.Client, img []byte) {
	big := testimage.JPEGOfSize(3*sys.maxBytes, 2)
	if len(big) <= sys.maxBytes+64<<10 {
		// Also over the body cap (limit + 64 KiB of multipart framing).
		big = append(big, make([]byte, 64<<10)...)
	}
	cases := []struct {
		name   string
		query  string
		up     upload
		status int
		code   string
	}{
		{"empty raw body", "", raw("image/jpeg", nil), 400, "empty_image"},
		{"empty body without content type", "", raw("", nil), 400, "empty_image"},
		{"empty file field", "", form("file", nil), 400, "empty_image"},
		{"not an image", "", raw("application/octet-stream", []byte("hello, this is not an image")), 415, "not_an_image"},
		{"not an image in multipart", "", form("file", []byte("GIF? no: plain text")), 415, "not_an_image"},
		{"truncated jpeg", "", raw("image/jpeg", img[:len(img)/2]), 422, "truncated_image"},
		{"truncated jpeg header", "", raw("image/jpeg", img[:20]), 422, "truncated_image"},
		{"over the body limit", "", raw("image/jpeg", big), 413, "too_large"},
		{"over the body limit in multipart", "", form("file", big), 413, "too_large"},
		{"over the pixel limit", "", raw("image/png", pngHeader(50000, 50000)), 422, "too_many_pixels"},
		{"multipart without the file field", "", form("", nil), 400, "missing_file_field"},
		{"multipart without boundary", "", raw("multipart/form-data", img), 415, "unsupported_content_type"},
		{"unknown task", "tasks=vehicle,nope", raw("image/jpeg", img), 400, "bad_query"},
		{"malformed timeout", "timeout=soon", raw("image/jpeg", img), 400, "bad_query"},
		{"timeout without unit", "timeout=5", raw("image/jpeg", img), 400, "bad_query"},
		{"zero timeout", "timeout=0s", raw("image/jpeg", img), 400, "bad_query"},
		{"negative timeout", "timeout=-1s", raw("image/jpeg", img), 400, "bad_query"},
		{"timeout over the maximum", "timeout=2h", raw("image/jpeg", img), 400, "bad_query"},
		{"unknown mode", "mode=parallel", raw("image/jpeg", img), 400, "bad_query"},
		{"unsupported content type", "", raw("text/plain", img), 415, "unsupported_content_type"},
		{"json content type", "", raw("application/json", []byte(`{"image":"..."}`)), 415, "unsupported_content_type"},
		{"malformed content type", "", raw("image/", img), 415, "unsupported_content_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := postImage(t, c, sys.orch.url, tc.query, tc.up)
			if a.Status != tc.status {
				t.Fatalf("status: got %d, want %d; body %s", a.Status, tc.status, a.Body)
			}
			if ct := a.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want %q", ct, "application/json")
			}
			var e errorReply
			if err := json.Unmarshal(a.Body, &e); err != nil {
				t.Fatalf("body %q: not JSON: %v", a.Body, err)
			}
			if e.Code != tc.code {
				t.Errorf("code: got %q, want %q (error %q)", e.Code, tc.code, e.Error)
			}
			if e.Error == "" {
				t.Errorf("error: got empty, want a message")
			}
			t.Logf("%d %s: %s", a.Status, e.Code, e.Error)
		})
	}
}

func testUploadForms(t *testing.T, sys *apiSystem, c *http.Client) {
	jpg := testimage.JPEG(64, 48, 90, 3)
	png := testimage.PNG(40, 30, 4)
	gif := testimage.GIF(20, 10)
	cases := []struct {
		name          string
		query         string
		up            upload
		data          []byte
		format        string
		width, height int
		mode          string
	}{
		{"multipart field file", "", form("file", jpg), jpg, "jpeg", 64, 48, "concurrent"},
		{"multipart field image", "", form("image", jpg), jpg, "jpeg", 64, 48, "concurrent"},
		{"raw image/jpeg", "", raw("image/jpeg", jpg), jpg, "jpeg", 64, 48, "concurrent"},
		{"raw octet-stream", "", raw("application/octet-stream", jpg), jpg, "jpeg", 64, 48, "concurrent"},
		{"raw without content type", "", raw("", jpg), jpg, "jpeg", 64, 48, "concurrent"},
		{"raw png", "", raw("image/png", png), png, "png", 40, 30, "concurrent"},
		{"multipart gif", "", form("file", gif), gif, "gif", 20, 10, "concurrent"},
		{"serial mode", "mode=serial", form("file", jpg), jpg, "jpeg", 64, 48, "serial"},
	}
	const tasks = "vehicle,plate,face"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := "tasks=" + tasks
			if tc.query != "" {
				q += "&" + tc.query
			}
			a := postImage(t, c, sys.orch.url, q, tc.up)
			if a.Status != http.StatusOK {
				t.Fatalf("status: got %d, want %d; body %s", a.Status, http.StatusOK, a.Body)
			}
			an := a.analysis(t)
			if _, err := uuid.Parse(an.JobID); err != nil {
				t.Errorf("job_id %q: not a uuid: %v", an.JobID, err)
			}
			if an.Mode != tc.mode {
				t.Errorf("mode: got %q, want %q", an.Mode, tc.mode)
			}
			if an.ElapsedMS <= 0 {
				t.Errorf("elapsed_ms: got %v, want > 0", an.ElapsedMS)
			}
			sum := sha256.Sum256(tc.data)
			im := an.Image
			if im.Bytes != len(tc.data) || im.SHA256 != hex.EncodeToString(sum[:]) ||
				im.Format != tc.format || im.ContentType != "image/"+tc.format ||
				im.Width != tc.width || im.Height != tc.height {
				t.Errorf("image: got %+v, want %d bytes, sha256 %x, %s %dx%d", im, len(tc.data), sum, tc.format, tc.width, tc.height)
			}
			names := make([]string, 0, len(an.Tasks))
			for name := range an.Tasks {
				names = append(names, name)
			}
			slices.Sort(names)
			if got, want := strings.Join(names, ","), "face,plate,vehicle"; got != want {
				t.Fatalf("tasks: got %s, want %s", got, want)
			}
			for name, tr := range an.Tasks {
				if tr.Status != "ok" || tr.Error != nil {
					t.Errorf("task %s: got status %q error %+v, want ok", name, tr.Status, tr.Error)
				}
				if tr.ElapsedMS <= 0 || tr.ElapsedMS > an.ElapsedMS {
					t.Errorf("task %s: elapsed_ms %v, want in (0, %v]", name, tr.ElapsedMS, an.ElapsedMS)
				}
				if want := sys.workers[name].id; tr.Worker != want {
					t.Errorf("task %s: worker %q, want %q", name, tr.Worker, want)
				}
				if tr.Attempts != 1 {
					t.Errorf("task %s: attempts %d, want 1", name, tr.Attempts)
				}
				var res struct {
					Simulated bool   `json:"simulated"`
					Task      string `json:"task"`
					Bytes     int    `json:"bytes"`
				}
				if err := json.Unmarshal(tr.Result, &res); err != nil {
					t.Errorf("task %s: result %s: %v", name, tr.Result, err)
				}
				if !res.Simulated || res.Task != name || res.Bytes != len(tc.data) {
					t.Errorf("task %s: result %s, want simulated, task %s, %d bytes", name, tr.Result, name, len(tc.data))
				}
			}
			if tc.mode == "serial" {
				// One after another, in the order asked for.
				v, p, f := an.Tasks["vehicle"], an.Tasks["plate"], an.Tasks["face"]
				const eps = 0.01 // ms: float rounding
				if !(v.StartedMS+v.ElapsedMS <= p.StartedMS+eps && p.StartedMS+p.ElapsedMS <= f.StartedMS+eps) {
					t.Errorf("serial: tasks overlap: vehicle %+v plate %+v face %+v", v, p, f)
				}
			}
		})
	}
}
