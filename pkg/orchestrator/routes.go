package orchestrator

import (
	"github.com/visionmesh/vision/pkg/discovery"
)

// routes adds what the orchestrator serves beside the analysis API:
// GET /v1/workers (worker pools, from NATS service discovery).
func (o *Orchestrator) routes() error {
	dc := discovery.Defaults(o.cfg.API.Tasks)
	dc.Prefix = o.cfg.Gather.Prefix
	d, err := discovery.New(o.nc, dc)
	if err != nil {
		return err
	}
	o.api.HandleAPI("GET /v1/workers", discovery.Handler(d))
	return nil
}
