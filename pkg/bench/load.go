package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Load is closed-loop HTTP load: each of Clients goroutines posts Body,
// reads the whole answer and posts again. In duration mode it runs Warmup
// and then Duration, and only requests that end inside that measured window
// count; in count mode (Requests > 0) it sends Requests requests in all and
// counts every one.
//
// With Rate set the load is paced (open loop) instead: the clients together
// start Rate requests per second on a fixed schedule, each client taking
// every Clients-th slot, and a request's latency runs from its scheduled
// start, so a client held up by a slow answer does not hide the delay
// (no coordinated omission). Closed-loop latency at N clients is N divided
// by the throughput (Little's law); paced load shows the latency of N
// concurrent clients when the system is not saturated.
type Load struct {
	URL         string
	Body        []byte
	ContentType string
	Clients     int
	Warmup      time.Duration
	Duration    time.Duration
	Requests    int
	// Rate, when positive, paces the load at this many requests per second
	// in all (duration mode only).
	Rate float64
	// Timeout bounds one request (default 60s).
	Timeout time.Duration
	// OnStart and OnStop, when set, are called as the measured window opens
	// and closes (to read CPU counters, reset peak RSS, start profiles).
	OnStart, OnStop func()
}

// Sample is what one Load run measured.
type Sample struct {
	// Latencies are those of the requests answered 200 in the window.
	Latencies  []time.Duration
	OK, Errors int
	FirstError string
	// Elapsed is the length of the measured window.
	Elapsed time.Duration
}

// Run applies the load until it is done or ctx ends.
func (l Load) Run(ctx context.Context) (Sample, error) {
	if l.Clients < 1 {
		return Sample{}, errors.New("bench: load needs at least one client")
	}
	if l.Requests <= 0 && l.Duration <= 0 {
		return Sample{}, errors.New("bench: load needs a duration or a request count")
	}
	if l.Timeout <= 0 {
		l.Timeout = 60 * time.Second
	}
	tr := newTransport(l.Clients)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: l.Timeout}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu     sync.Mutex
		sample Sample
		wg     sync.WaitGroup
		stop   atomic.Bool
		sent   atomic.Int64
	)
	start := time.Now()
	t0, t1 := start.Add(l.Warmup), start.Add(l.Warmup+l.Duration)
	counted := func(end time.Time) bool {
		return l.Requests > 0 || (!end.Before(t0) && !end.After(t1))
	}
	if l.Requests > 0 {
		t0 = start
		if l.OnStart != nil {
			l.OnStart()
		}
	}
	var interval time.Duration
	if l.Rate > 0 && l.Requests <= 0 {
		interval = time.Duration(float64(time.Second) / l.Rate)
	}
	for c := range l.Clients {
		wg.Go(func() {
			var lat []time.Duration
			var ok, errs int
			var first string
			for k := 0; !stop.Load() && ctx.Err() == nil; k++ {
				if l.Requests > 0 && sent.Add(1) > int64(l.Requests) {
					break
				}
				begin := time.Now()
				if interval > 0 {
					begin = start.Add(time.Duration(k*l.Clients+c) * interval)
					if !sleepUntil(ctx, begin) {
						break
					}
				}
				err := l.do(ctx, client)
				end := time.Now()
				if !counted(end) {
					continue
				}
				if err != nil {
					if ctx.Err() != nil && stop.Load() {
						break // cut short by the end of the run, not a failure
					}
					errs++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				ok++
				lat = append(lat, end.Sub(begin))
			}
			mu.Lock()
			sample.Latencies = append(sample.Latencies, lat...)
			sample.OK += ok
			sample.Errors += errs
			if sample.FirstError == "" {
				sample.FirstError = first
			}
			mu.Unlock()
		})
	}

	if l.Requests > 0 {
		wg.Wait()
		sample.Elapsed = time.Since(start)
		if l.OnStop != nil {
			l.OnStop()
		}
		return sample, ctx.Err()
	}
	if !sleepUntil(ctx, t0) {
		stop.Store(true)
		wg.Wait()
		return sample, ctx.Err()
	}
	if l.OnStart != nil {
		l.OnStart()
	}
	sleepUntil(ctx, t1)
	if l.OnStop != nil {
		l.OnStop()
	}
	stop.Store(true)
	wg.Wait()
	sample.Elapsed = t1.Sub(t0)
	return sample, ctx.Err()
}

// do sends one request and reads the whole answer; any status but 200 is
// an error.
func (l Load) do(ctx context.Context, c *http.Client) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.URL, bytes.NewReader(l.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", l.ContentType)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// newTransport returns a keep-alive HTTP transport with an idle connection
// per concurrent request, so that no request waits for a dial.
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no total limit
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// sleepUntil waits until t or until ctx ends, and reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}
