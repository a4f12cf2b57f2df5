package api

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/visionmesh/vision/pkg/job"
)

// Claims keeps large images out of task messages (claimcheck.Store): an
// image it says is Needed goes to an object store, and the task messages
// carry its reference (job.HeaderObject) instead of the bytes.
type Claims interface {
	// Needed reports whether an image of size bytes goes to the store.
	Needed(size int) bool
	// Put stores data under name (the job id) and returns its reference.
	Put(ctx context.Context, name string, data []byte) (ref string, err error)
	// Delete removes the object ref; one already gone is not an error.
	Delete(ctx context.Context, ref string) error
}

// EnableClaims sends images c says are Needed through c, for /v1/analyze
// and /v1/jobs. When c fails, an image of at most inlineMax bytes (what
// still fits in a NATS message) is sent inline; a larger one is refused
// with ErrClaimCheckUnavailable.
func (s *Server) EnableClaims(c Claims, inlineMax int64) {
	s.claims, s.inlineMax = c, inlineMax
}

// claim puts data in the object store when it is large enough to need it.
// It returns the reference, or "" to send the image inline.
func (s *Server) claim(ctx context.Context, id string, data []byte) (string, error) {
	if s.claims == nil || !s.claims.Needed(len(data)) {
		return "", nil
	}
	ref, err := s.claims.Put(ctx, id, data)
	if err == nil {
		return ref, nil
	}
	if int64(len(data)) <= s.inlineMax {
		s.log.Warn("claim-check failed: image sent inline", "job_id", id, "bytes", len(data), "err", err)
		return "", nil
	}
	return "", fmt.Errorf("%w: %v", ErrClaimCheckUnavailable, err)
}

// unclaim deletes a claim-checked image once nothing needs it any more,
// also when the request was cancelled.
func (s *Server) unclaim(ctx context.Context, id, ref string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.claims.Delete(ctx, ref); err != nil {
		s.log.Warn("claim-check: delete failed (the bucket's TTL will remove it)", "job_id", id, "object", ref, "err", err)
	}
}

// withObject returns h (copied, or new) with the Job-Object header.
func withObject(h nats.Header, ref string) nats.Header {
	out := make(nats.Header, len(h)+1)
	for k, v := range h {
		out[k] = v
	}
	out.Set(job.HeaderObject, ref)
	return out
}
