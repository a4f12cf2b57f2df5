package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/visionmesh/vision/pkg/testimage"
)

// FuzzAnalyze sends arbitrary bodies, content types and query strings to
// POST /v1/analyze: the server must never panic, must answer with a known
// status and a JSON body, and must only fan out images it could inspect.
func FuzzAnalyze(f *testing.F) {
	jpg := testimage.JPEG(16, 16, 80, 1)
	mp, ct := multipartBody(f, "file", jpg)
	mpBytes := new(bytes.Buffer)
	mpBytes.ReadFrom(mp)
	f.Add(jpg, "image/jpeg", "")
	f.Add(jpg[:len(jpg)/2], "image/jpeg", "timeout=2s")
	f.Add(mpBytes.Bytes(), ct, "tasks=face,plate&mode=serial")
	f.Add(testimage.PNG(4, 4, 1), "application/octet-stream", "mode=x")
	f.Add(testimage.GIF(4, 4), "image/gif", "tasks=,")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nxx\r\n--b--"), "multipart/form-data; boundary=b", "")
	f.Add(pngBomb(), "image/png", "")
	g := &fakeGatherer{}
	s := newServer(f, g, nil)
	known := map[int]bool{200: true, 400: true, 413: true, 415: true, 422: true}
	f.Fuzz(func(t *testing.T, body []byte, contentType, rawQuery string) {
		if _, err := url.ParseQuery(rawQuery); err != nil {
			rawQuery = ""
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/analyze", bytes.NewReader(body))
		req.URL.RawQuery = rawQuery
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if !known[rec.Code] {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("body is not JSON: %v: %q", err, rec.Body)
		}
		if rec.Code != 200 && (m["error"] == nil || m["code"] == nil) {
			t.Fatalf("error answer without error/code: %v", m)
		}
	})
}
