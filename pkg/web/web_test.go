package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/visionmesh/vision/pkg/web"
)

func newServer(t testing.TB) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	for _, p := range web.Routes {
		mux.Handle(p, web.Handler())
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestServe(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		path     string
		status   int
		typ      string
		contains string
	}{
		{"/", http.StatusOK, "text/html; charset=utf-8", `<script src="/web/app.js" defer>`},
		{"/web/app.js", http.StatusOK, "text/javascript; charset=utf-8", "/v1/analyze"},
		{"/web/style.css", http.StatusOK, "text/css; charset=utf-8", ".bar"},
		{"/web/", http.StatusNotFound, "", ""},
		{"/web/nope.js", http.StatusNotFound, "", ""},
		{"/nope", http.StatusNotFound, "", ""},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != http.StatusOK {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tc.typ {
				t.Errorf("content type: got %q, want %q", got, tc.typ)
			}
			if !strings.Contains(string(b), tc.contains) {
				t.Errorf("body does not contain %q", tc.contains)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
				t.Errorf("CSP: got %q, want default-src 'self'", csp)
			}
		})
	}
}

// TestNoInlineCode: the CSP forbids inline scripts and styles, so the page
// must have none (they would be silently blocked).
func TestNoInlineCode(t *testing.T) {
	resp, err := http.Get(newServer(t).URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(b)
	for _, bad := range []string{"<script>", "<style", " style=\"", "onclick=", "onload="} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}

// TestScriptParses checks app.js with node when it is installed; the
// browser test in test/ runs it for real.
func TestScriptParses(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	if out, err := exec.Command(node, "--check", "static/app.js").CombinedOutput(); err != nil {
		t.Fatalf("node --check app.js: %v\n%s", err, out)
	}
}
