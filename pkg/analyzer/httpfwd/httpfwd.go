// Package httpfwd is an analyzer that forwards each job to an existing model
// server over HTTP, the way the original Flask task services are called: a
// multipart/form-data POST with the image in the field "media". The server's
// JSON reply is the job's result, passed through as it is.
package httpfwd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"time"

	"github.com/visionmesh/vision/pkg/analyzer"
)

// Field is the form field that carries the image.
const Field = "media"

// maxReply bounds the reply body read from the server.
const maxReply = 16 << 20

// Config configures the forwarder.
type Config struct {
	// URL is the model server's endpoint (http or https), required.
	URL string
	// Timeout bounds one request; 0 means 30s. The job's deadline applies
	// too.
	Timeout time.Duration
	// Client sends the requests; nil means a client with Timeout.
	Client *http.Client
}

// Forwarder is an analyzer.Analyzer that posts the image to Config.URL.
type Forwarder struct {
	url    string
	client *http.Client
}

var _ analyzer.Analyzer = (*Forwarder)(nil)

// New validates cfg and returns a Forwarder.
func New(cfg Config) (*Forwarder, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("httpfwd: url %q must be an http or https URL", cfg.URL)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	c := cfg.Client
	if c == nil {
		c = &http.Client{Timeout: cfg.Timeout}
	}
	return &Forwarder{url: cfg.URL, client: c}, nil
}

// Analyze posts the image and returns the server's JSON reply as a
// json.RawMessage. Errors: the server's 400, 413, 415 and 422 wrap
// analyzer.ErrBadImage; a server that cannot be reached, 429, 502, 503 and
// 504 wrap analyzer.ErrUnavailable; a reply that is not JSON is an error.
func (f *Forwarder) Analyze(ctx context.Context, in analyzer.Input) (any, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, Field, "image"+ext(in.ContentType)))
	ct := in.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	part, err := mw.CreatePart(h)
	if err != nil {
		return nil, fmt.Errorf("httpfwd: %w", err)
	}
	if _, err := part.Write(in.Data); err != nil {
		return nil, fmt.Errorf("httpfwd: %w", err)
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("httpfwd: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, &body)
	if err != nil {
		return nil, fmt.Errorf("httpfwd: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Accept", "application/json")
	if in.JobID != "" {
		req.Header.Set("Job-Id", in.JobID)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: httpfwd: %v", analyzer.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReply+1))
	if err != nil {
		return nil, fmt.Errorf("httpfwd: read reply: %w", err)
	}
	if len(data) > maxReply {
		return nil, fmt.Errorf("httpfwd: reply over %d bytes", maxReply)
	}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated:
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		return nil, analyzer.BadImagef("model server: %s: %s", resp.Status, snippet(data))
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return nil, fmt.Errorf("%w: model server: %s: %s", analyzer.ErrUnavailable, resp.Status, snippet(data))
	default:
		return nil, fmt.Errorf("httpfwd: model server: %s: %s", resp.Status, snippet(data))
	}
	if !json.Valid(data) {
		return nil, errors.New("httpfwd: model server replied with something that is not JSON: " + snippet(data))
	}
	return json.RawMessage(data), nil
}

func ext(contentType string) string {
	switch contentType {
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	case "image/gif":
		return ".gif"
	}
	return ""
}

// snippet returns the start of a reply body for an error message.
func snippet(b []byte) string {
	const n = 200
	b = bytes.TrimSpace(b)
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
