package orchestrator

import (
	"net/http"

	"github.com/visionmesh/vision/pkg/discovery"
	"github.com/visionmesh/vision/pkg/metrics"
	"github.com/visionmesh/vision/pkg/web"
)

// routes adds what the orchestrator serves beside the analysis API:
// GET /v1/workers (worker pools, from NATS service discovery), the web page
// at / (its assets under /web/) and GET /metrics (Prometheus). It returns
// the handler to serve: the API, instrumented.
func (o *Orchestrator) routes() (http.Handler, error) {
	dc := discovery.Defaults(o.cfg.API.Tasks)
	dc.Prefix = o.cfg.Gather.Prefix
	d, err := discovery.New(o.nc, dc)
	if err != nil {
		return nil, err
	}
	o.api.HandleAPI("GET /v1/workers", discovery.Handler(d))
	page := web.Handler()
	for _, p := range web.Routes {
		o.api.Handle(p, page)
	}
	m := metrics.NewOrchestrator(o.nc, o.g)
	o.api.SetObserver(m)
	// Metrics are open like /healthz: they hold no secret, and Prometheus
	// scrapes without the API keys.
	o.api.Handle("GET /metrics", m.Handler())
	return m.Instrument(o.api), nil
}
