package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/visionmesh/vision/pkg/imageinfo"
)

// Errors of request handling. statusOf maps them to HTTP status codes; the
// JSON body carries the message and a stable machine-readable code.
var (
	// ErrNoImage means the request carried no image bytes.
	ErrNoImage = errors.New("no image in the request")
	// ErrNoFileField means a multipart request had no "file" or "image" part.
	ErrNoFileField = errors.New(`multipart request has no "file" (or "image") field`)
	// ErrTooLarge means the body or the image exceeds the size limit.
	ErrTooLarge = errors.New("request body too large")
	// ErrMediaType means the request's Content-Type is not accepted.
	ErrMediaType = errors.New("unsupported content type")
	// ErrBadQuery means a query parameter is malformed or out of range.
	ErrBadQuery = errors.New("bad query parameter")
	// ErrOverloaded means the in-flight limit is reached; retry later.
	ErrOverloaded = errors.New("orchestrator overloaded")
	// ErrNotReady means there is no connection to NATS right now.
	ErrNotReady = errors.New("not connected to NATS")
	// ErrIdempotencyConflict means an Idempotency-Key came back with a
	// different image than the job it first created.
	ErrIdempotencyConflict = errors.New("idempotency key reused with another image")
	// ErrUnauthorized means the API key is missing or wrong.
	ErrUnauthorized = errors.New("missing or invalid API key")
	// ErrJobNotFound means no async job has that id (or it expired).
	ErrJobNotFound = errors.New("no such job")
	// ErrJobsUnavailable means the job store (JetStream) cannot be reached.
	ErrJobsUnavailable = errors.New("job store unavailable")
	// ErrClaimCheckUnavailable means an image too large for a NATS message
	// could not be put in the object store.
	ErrClaimCheckUnavailable = errors.New("image store unavailable")
)

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// statusOf maps an error to its HTTP status and machine code.
func statusOf(err error) (int, string) {
	switch {
	case errors.Is(err, ErrNoImage), errors.Is(err, imageinfo.ErrEmpty):
		return http.StatusBadRequest, "empty_image"
	case errors.Is(err, ErrNoFileField):
		return http.StatusBadRequest, "missing_file_field"
	case errors.Is(err, ErrBadQuery):
		return http.StatusBadRequest, "bad_query"
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, ErrMediaType):
		return http.StatusUnsupportedMediaType, "unsupported_content_type"
	case errors.Is(err, imageinfo.ErrUnknownFormat):
		return http.StatusUnsupportedMediaType, "not_an_image"
	case errors.Is(err, imageinfo.ErrCorrupt):
		return http.StatusUnprocessableEntity, "corrupt_image"
	case errors.Is(err, imageinfo.ErrTruncated):
		return http.StatusUnprocessableEntity, "truncated_image"
	case errors.Is(err, imageinfo.ErrTooManyPixels):
		return http.StatusUnprocessableEntity, "too_many_pixels"
	case errors.Is(err, ErrOverloaded):
		return http.StatusServiceUnavailable, "overloaded"
	case errors.Is(err, ErrNotReady):
		return http.StatusServiceUnavailable, "nats_unavailable"
	case errors.Is(err, ErrIdempotencyConflict):
		return http.StatusUnprocessableEntity, "idempotency_conflict"
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrJobNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrJobsUnavailable):
		return http.StatusServiceUnavailable, "jobs_unavailable"
	case errors.Is(err, ErrClaimCheckUnavailable):
		return http.StatusServiceUnavailable, "claim_check_unavailable"
	default:
		return http.StatusInternalServerError, "internal"
	}
}

// writeError answers with err's status and a JSON body.
func writeError(w http.ResponseWriter, err error) int {
	status, code := statusOf(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, errorBody{Error: err.Error(), Code: code})
	return status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(fmt.Sprintf(`{"error":%q,"code":"internal"}`, err.Error()))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
