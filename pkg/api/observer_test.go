package api_test

import (
	"bytes"
	"strconv"
	"sync"
	"testing"

	"github.com/visionmesh/vision/pkg/api"
	"github.com/visionmesh/vision/pkg/gather"
	"github.com/visionmesh/vision/pkg/testimage"
)

type seen struct {
	mu      sync.Mutex
	analyze []string // "mode status bytes tasks"
	refused []string
}

func (s *seen) ObserveAnalyze(mode string, status int, bytes int, outs []gather.Outcome) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var tasks string
	for _, o := range outs {
		tasks += " " + o.Task + "=" + string(o.Status)
	}
	s.analyze = append(s.analyze, mode+" "+strconv.Itoa(status)+" "+strconv.Itoa(bytes)+tasks)
}

func (s *seen) ObserveRefused(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refused = append(s.refused, code)
}

func TestObserver(t *testing.T) {
	g := &fakeGatherer{status: map[string]gather.Status{"face": gather.StatusUnavailable}}
	s := newServer(t, g, nil)
	o := &seen{}
	s.SetObserver(o)
	jpg := testimage.JPEG(8, 8, 80, 1)
	do(t, s, "/v1/analyze?mode=serial", bytes.NewReader(jpg), "image/jpeg")
	do(t, s, "/v1/analyze", bytes.NewReader([]byte("not an image")), "image/jpeg")
	do(t, s, "/v1/analyze?mode=nope", bytes.NewReader(jpg), "image/jpeg")

	want := "serial 207 " + strconv.Itoa(len(jpg)) + " vehicle=ok plate=ok face=unavailable"
	if len(o.analyze) != 1 || o.analyze[0] != want {
		t.Errorf("analyses: got %q, want [%q]", o.analyze, want)
	}
	if got := o.refused; len(got) != 2 || got[0] != "not_an_image" || got[1] != "bad_query" {
		t.Errorf("refused: got %q, want [not_an_image bad_query]", got)
	}
	var _ api.Observer = o
}
