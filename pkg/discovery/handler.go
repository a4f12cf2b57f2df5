package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
)

// Handler serves GET /v1/workers: the Report of d as JSON. When NATS is
// unreachable it answers 503 with the API's error body
// ({"error": ..., "code": "nats_unavailable"}) and Retry-After.
func Handler(d *Discoverer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rep, err := d.Pools(r.Context())
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, rep)
		case errors.Is(err, ErrNotConnected):
			w.Header().Set("Retry-After", "1")
			writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: err.Error(), Code: "nats_unavailable"})
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			// The client left; nobody reads the answer.
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: err.Error(), Code: "internal"})
		}
	})
}

// errorBody has the shape of every error body of the HTTP API.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
