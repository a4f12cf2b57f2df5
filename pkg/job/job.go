// Package job holds the wire protocol shared by the orchestrator and the task
// workers: subject names, NATS header names and the error codes of worker
// replies. Both sides import it so the protocol is written down once.
package job

import (
	"fmt"
	"strings"
	"time"
)

// Header names carried by job requests and replies.
const (
	// HeaderID carries the job id (a uuid) on requests and replies.
	HeaderID = "Job-Id"
	// HeaderContentType carries the image's media type on requests.
	HeaderContentType = "Content-Type"
	// HeaderDeadline carries the absolute deadline of the job (RFC 3339, UTC).
	HeaderDeadline = "Job-Deadline"
	// HeaderAttempt numbers dispatches of the same task of a job, from 1.
	HeaderAttempt = "Job-Attempt"
	// HeaderHeartbeat asks the worker to send a heartbeat at this interval
	// (a Go duration) while it holds the job.
	HeaderHeartbeat = "Job-Heartbeat"
	// HeaderStatus marks a heartbeat reply (value StatusWorking).
	HeaderStatus = "Job-Status"
	// HeaderWorker names the worker instance that replied.
	HeaderWorker = "Worker-Id"
	// HeaderTraceParent and HeaderTraceState carry W3C trace context.
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
	// HeaderObject replaces the payload of a large image (claim-check):
	// "<bucket>/<name>" of a JetStream object holding the image; the
	// message body is then empty and the worker fetches the object.
	HeaderObject = "Job-Object"
)

// StatusWorking is the HeaderStatus value of a heartbeat.
const StatusWorking = "working"

// Error codes of worker error replies (micro's Nats-Service-Error-Code).
const (
	CodeBadJob      = "400" // the request lacks required headers
	CodeBadImage    = "422" // the image cannot be decoded or is refused
	CodeFailed      = "500" // the analyzer failed or panicked
	CodeBusy        = "503" // the replica's queue is full; try another
	CodeDeadline    = "504" // the deadline passed before the work finished
	CodeUnavailable = "503" // the analyzer cannot work now (same as busy)
)

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "vision"

// Subject returns the subject jobs of task are published on.
func Subject(prefix, task string) string {
	return prefix + ".task." + task
}

// ValidName reports whether s can be a task name: it becomes a subject token,
// a queue group and a micro service name, so only [A-Za-z0-9_-] are allowed.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("empty name")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("name %q: only letters, digits, '-' and '_' are allowed", s)
		}
	}
	return nil
}

// ValidPrefix reports whether p can be a subject prefix (dot-separated names).
func ValidPrefix(p string) error {
	for _, tok := range strings.Split(p, ".") {
		if err := ValidName(tok); err != nil {
			return fmt.Errorf("prefix %q: %w", p, err)
		}
	}
	return nil
}

// FormatDeadline encodes t for HeaderDeadline.
func FormatDeadline(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseDeadline decodes a HeaderDeadline value.
func ParseDeadline(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad %s %q: %w", HeaderDeadline, s, err)
	}
	return t, nil
}

// ObjectRef encodes a claim-checked image's place for HeaderObject.
func ObjectRef(bucket, name string) string { return bucket + "/" + name }

// ParseObjectRef decodes a HeaderObject value into its bucket and object
// name. The bucket must be a valid name (it becomes part of a stream name);
// the object name must not be empty.
func ParseObjectRef(ref string) (bucket, name string, err error) {
	bucket, name, ok := strings.Cut(ref, "/")
	if !ok || name == "" {
		return "", "", fmt.Errorf("bad %s %q: want <bucket>/<name>", HeaderObject, ref)
	}
	if err := ValidName(bucket); err != nil {
		return "", "", fmt.Errorf("bad %s %q: bucket: %w", HeaderObject, ref, err)
	}
	return bucket, name, nil
}
