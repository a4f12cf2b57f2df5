#!/usr/bin/env bash
# The project's test command (README): fetch the test photos and the models
# (both cached, git-ignored), then run every test with the race detector
# against real embedded NATS servers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash testdata/fetch-images.sh
bash scripts/setup-models.sh
go vet ./...
go test -race -count=1 -timeout 20m "$@" ./...
