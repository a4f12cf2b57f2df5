package orchestrator

import (
	"github.com/visionmesh/vision/pkg/discovery"
	"github.com/visionmesh/vision/pkg/web"
)

// routes adds what the orchestrator serves beside the analysis API:
// GET /v1/workers (worker pools, from NATS service discovery) and the web
// page at / (its assets under /web/).
func (o *Orchestrator) routes() error {
	dc := discovery.Defaults(o.cfg.API.Tasks)
	dc.Prefix = o.cfg.Gather.Prefix
	d, err := discovery.New(o.nc, dc)
	if err != nil {
		return err
	}
	o.api.HandleAPI("GET /v1/workers", discovery.Handler(d))
	page := web.Handler()
	for _, p := range web.Routes {
		o.api.Handle(p, page)
	}
	return nil
}
