package httpfwd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
	"github.com/visionmesh/vision/pkg/analyzer/httpfwd"
)

// newServer starts a model server that checks the upload and replies with
// status and body.
func newServer(t *testing.T, status int, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, hdr, err := r.FormFile(httpfwd.Field)
		if err != nil {
			http.Error(w, "no media: "+err.Error(), http.StatusBadRequest)
			return
		}
		data, _ := io.ReadAll(f)
		if !bytes.Equal(data, []byte("IMAGE")) || hdr.Header.Get("Content-Type") != "image/png" || r.Header.Get("Job-Id") != "j1" {
			http.Error(w, "unexpected upload", http.StatusTeapot)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

var input = analyzer.Input{JobID: "j1", Task: "face", ContentType: "image/png", Data: []byte("IMAGE")}

func TestForward(t *testing.T) {
	srv := newServer(t, http.StatusOK, `{"faces":[{"name":"ada"}]}`)
	f, err := httpfwd.New(httpfwd.Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	res, err := f.Analyze(context.Background(), input)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	got, _ := json.Marshal(res)
	if want := `{"faces":[{"name":"ada"}]}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error // nil: any error that is neither sentinel
	}{
		{"bad image", http.StatusUnprocessableEntity, `{"error":"cannot decode"}`, analyzer.ErrBadImage},
		{"busy", http.StatusServiceUnavailable, `{}`, analyzer.ErrUnavailable},
		{"server error", http.StatusInternalServerError, `oops`, nil},
		{"not json", http.StatusOK, `<html>`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := httpfwd.New(httpfwd.Config{URL: newServer(t, tc.status, tc.body).URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.Analyze(context.Background(), input)
			switch {
			case err == nil:
				t.Fatalf("got nil error, want one")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("got %v, want %v", err, tc.want)
			case tc.want == nil && (errors.Is(err, analyzer.ErrBadImage) || errors.Is(err, analyzer.ErrUnavailable)):
				t.Errorf("got %v, want a plain error", err)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	f, err := httpfwd.New(httpfwd.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Analyze(context.Background(), input); !errors.Is(err, analyzer.ErrUnavailable) {
		t.Errorf("got %v, want ErrUnavailable", err)
	}
}

func TestDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	defer close(release)
	f, err := httpfwd.New(httpfwd.Config{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.Analyze(ctx, input); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x/", "localhost:8080"} {
		if _, err := httpfwd.New(httpfwd.Config{URL: u}); err == nil {
			t.Errorf("New(%q): got nil error, want one", u)
		}
	}
}
