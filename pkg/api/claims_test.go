package api_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"

	"github.com/visionmesh/vision/pkg/job"
	"github.com/visionmesh/vision/pkg/testimage"
)

// fakeClaims keeps objects in a map; Put fails with putErr when set.
type fakeClaims struct {
	threshold int
	putErr    error

	mu      sync.Mutex
	objects map[string][]byte
	deleted []string
}

func (f *fakeClaims) Needed(size int) bool { return size > f.threshold }

func (f *fakeClaims) Put(_ context.Context, name string, data []byte) (string, error) {
	if f.putErr != nil {
		return "", f.putErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.objects == nil {
		f.objects = map[string][]byte{}
	}
	f.objects[name] = bytes.Clone(data)
	return job.ObjectRef("vision_images", name), nil
}

func (f *fakeClaims) Delete(_ context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deleted = append(f.deleted, ref)
	_, name, _ := job.ParseObjectRef(ref)
	delete(f.objects, name)
	return nil
}

func TestAnalyzeClaimCheck(t *testing.T) {
	small := testimage.JPEG(16, 16, 80, 1)
	large := testimage.JPEG(200, 150, 95, 1)
	for _, tc := range []struct {
		name       string
		img        []byte
		putErr     error
		inlineMax  int64
		wantStatus int
		wantObject bool
	}{
		{"small inline", small, nil, 1 << 20, http.StatusOK, false},
		{"large claim-checked", large, nil, 1 << 20, http.StatusOK, true},
		{"store down, fits inline", large, errors.New("down"), 1 << 20, http.StatusOK, false},
		{"store down, too large", large, errors.New("down"), int64(len(large)) - 1, http.StatusServiceUnavailable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &fakeGatherer{}
			s := newServer(t, g, nil)
			c := &fakeClaims{threshold: len(small) + 1, putErr: tc.putErr}
			s.EnableClaims(c, tc.inlineMax)
			resp, body := do(t, s, "/v1/analyze", bytes.NewReader(tc.img), "image/jpeg")
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d %v, want %d", resp.StatusCode, body, tc.wantStatus)
			}
			if tc.wantStatus != http.StatusOK {
				if got := body["code"]; got != "claim_check_unavailable" {
					t.Errorf("code %v, want claim_check_unavailable", got)
				}
				return
			}
			g.mu.Lock()
			j := g.last
			g.mu.Unlock()
			ref := j.Header.Get(job.HeaderObject)
			if got := ref != ""; got != tc.wantObject {
				t.Fatalf("Job-Object %q, want one: %v", ref, tc.wantObject)
			}
			if tc.wantObject {
				if len(j.Data) != 0 {
					t.Errorf("task payload %d bytes, want empty", len(j.Data))
				}
				if len(c.deleted) != 1 || c.deleted[0] != ref || len(c.objects) != 0 {
					t.Errorf("deleted %v, left %d objects, want %s deleted", c.deleted, len(c.objects), ref)
				}
			} else if !bytes.Equal(j.Data, tc.img) {
				t.Errorf("task payload %d bytes, want the %d-byte image", len(j.Data), len(tc.img))
			}
		})
	}
}
