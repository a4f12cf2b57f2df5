package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Mode names.
const (
	ModeConcurrent = "concurrent"
	ModeSerial     = "serial"
)

// query is the parsed query string of /v1/analyze.
type query struct {
	mode    string
	tasks   []string
	timeout time.Duration
}

// parseQuery reads mode, tasks and timeout, checking them against the
// configured tasks and the timeout cap.
func parseQuery(v url.Values, cfg Config) (query, error) {
	q := query{mode: ModeConcurrent, tasks: cfg.Tasks, timeout: cfg.Timeout}
	switch m := v.Get("mode"); m {
	case "", ModeConcurrent:
	case ModeSerial:
		q.mode = ModeSerial
	default:
		return q, fmt.Errorf("%w: mode %q: want %q or %q", ErrBadQuery, m, ModeConcurrent, ModeSerial)
	}
	if s := v.Get("tasks"); s != "" {
		q.tasks = nil
		for _, name := range strings.Split(s, ",") {
			name = strings.TrimSpace(name)
			if !slices.Contains(cfg.Tasks, name) {
				return q, fmt.Errorf("%w: unknown task %q (have %s)", ErrBadQuery, name, strings.Join(cfg.Tasks, ","))
			}
			if !slices.Contains(q.tasks, name) {
				q.tasks = append(q.tasks, name)
			}
		}
	}
	if s := v.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return q, fmt.Errorf("%w: timeout %q: want a duration such as 2s or 500ms", ErrBadQuery, s)
		}
		if d <= 0 || d > cfg.MaxTimeout {
			return q, fmt.Errorf("%w: timeout %v: want more than 0 and at most %v", ErrBadQuery, d, cfg.MaxTimeout)
		}
		q.timeout = d
	}
	return q, nil
}

// textFields are the small multipart text fields readImageFields keeps
// (they must come before the image part).
var textFields = []string{"callback_url"}

// maxTextField bounds a kept text field.
const maxTextField = 2 << 10

// readImageFields reads the image from a raw or multipart body into buf,
// which it leaves holding exactly the image bytes, and keeps the textFields
// of a multipart body in fields when fields is not nil. The body must
// already be capped with http.MaxBytesReader.
func readImageFields(r *http.Request, buf *bytes.Buffer, maxBytes int64, fields map[string]string) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil && ct != "" {
		return fmt.Errorf("%w: %q", ErrMediaType, ct)
	}
	switch {
	case mt == "multipart/form-data":
		boundary := params["boundary"]
		if boundary == "" {
			return fmt.Errorf("%w: multipart without boundary", ErrMediaType)
		}
		return readMultipart(r, boundary, buf, maxBytes, fields)
	case strings.HasPrefix(mt, "image/"), mt == "application/octet-stream", ct == "":
		if n := r.ContentLength; n > 0 && n <= maxBytes {
			// One buffer of the right size instead of doubling from 512
			// bytes (and MinRead more, or ReadFrom doubles it once again
			// only to read EOF): a 2 MB upload then pins 2 MB, not 4.
			buf.Grow(int(n) + bytes.MinRead)
		}
		return readAll(r.Body, buf, maxBytes)
	default:
		return fmt.Errorf("%w: %q: send multipart/form-data with a \"file\" field, or the image bytes with an image/* or application/octet-stream type", ErrMediaType, mt)
	}
}

// fileFields are the multipart field names that may carry the image: the
// original Flask design used "file".
var fileFields = []string{"file", "image"}

func readMultipart(r *http.Request, boundary string, buf *bytes.Buffer, maxBytes int64, fields map[string]string) error {
	mr := multipart.NewReader(r.Body, boundary)
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return ErrNoFileField
		}
		if err != nil {
			return bodyErr(fmt.Errorf("multipart: %w", err))
		}
		if slices.Contains(fileFields, p.FormName()) {
			err := readAll(p, buf, maxBytes)
			_ = p.Close()
			return err
		}
		if fields != nil && slices.Contains(textFields, p.FormName()) {
			b, err := io.ReadAll(io.LimitReader(p, maxTextField+1))
			if err != nil {
				return bodyErr(fmt.Errorf("multipart: %w", err))
			}
			if len(b) > maxTextField {
				return fmt.Errorf("%w: field %s over %d bytes", ErrBadQuery, p.FormName(), maxTextField)
			}
			fields[p.FormName()] = string(b)
		}
		_ = p.Close()
	}
}

// readAll copies at most maxBytes from r into buf.
func readAll(r io.Reader, buf *bytes.Buffer, maxBytes int64) error {
	n, err := buf.ReadFrom(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return bodyErr(err)
	}
	if n > maxBytes {
		return fmt.Errorf("%w: image over %d bytes", ErrTooLarge, maxBytes)
	}
	if n == 0 {
		return ErrNoImage
	}
	return nil
}

// bodyErr turns a body read error into ErrTooLarge when the body limit cut
// it, and into ErrNoImage otherwise (the client sent a broken body).
func bodyErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: body over %d bytes", ErrTooLarge, mbe.Limit)
	}
	return fmt.Errorf("%w: reading body: %v", ErrNoImage, err)
}
