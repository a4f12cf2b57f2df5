package jobs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/visionmesh/vision/pkg/api"
)

// HeaderSignature carries "sha256=<hex HMAC-SHA256 of the body>" on a
// callback, keyed with Config.CallbackSecret.
const HeaderSignature = "X-Signature"

// Sign returns the HeaderSignature value of body under secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// callback POSTs the done document to its callback URL, retrying with
// doubling backoff on transport errors and 5xx/429 answers.
func (p *Processor) callback(ctx context.Context, doc api.JobDoc, log *slog.Logger) *api.CallbackReport {
	body, err := json.Marshal(doc)
	rep := &api.CallbackReport{}
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	backoff := p.st.cfg.CallbackBackoff
	for rep.Attempts < p.st.cfg.CallbackAttempts {
		if rep.Attempts > 0 {
			if !p.pauseCtx(ctx, backoff) {
				break
			}
			backoff *= 2
		}
		rep.Attempts++
		status, err := p.post(ctx, doc.CallbackURL, body)
		rep.Status = status
		switch {
		case err != nil:
			rep.Error = err.Error()
		case status >= 200 && status < 300:
			rep.Delivered, rep.Error = true, ""
			log.Info("job callback delivered", "status", status, "attempts", rep.Attempts)
			return rep
		default:
			rep.Error = fmt.Sprintf("callback answered %d", status)
			if status < 500 && status != http.StatusTooManyRequests {
				log.Warn("job callback refused", "status", status)
				return rep // the receiver will not change its mind
			}
		}
	}
	log.Warn("job callback failed", "attempts", rep.Attempts, "err", rep.Error)
	return rep
}

func (p *Processor) post(ctx context.Context, url string, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vision-orchestrator")
	if p.st.cfg.CallbackSecret != "" {
		req.Header.Set(HeaderSignature, Sign(p.st.cfg.CallbackSecret, body))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
