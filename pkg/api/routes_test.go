package api_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/visionmesh/vision/pkg/api"
)

// TestHandleAPI: a route added with HandleAPI needs a key like /v1/analyze;
// one added with Handle does not.
func TestHandleAPI(t *testing.T) {
	s := newServer(t, &fakeGatherer{}, func(c *api.Config) { c.APIKeys = []string{"k1"} })
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	s.HandleAPI("GET /v1/workers", ok)
	s.Handle("GET /{$}", ok)
	for _, tc := range []struct {
		name, path, key string
		want            int
	}{
		{"api route without key", "/v1/workers", "", http.StatusUnauthorized},
		{"api route with key", "/v1/workers", "k1", http.StatusTeapot},
		{"open route", "/", "", http.StatusTeapot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.path, nil)
			if tc.key != "" {
				r.Header.Set("X-API-Key", tc.key)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("got %d, want %d", w.Code, tc.want)
			}
		})
	}
}
