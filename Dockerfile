# syntax=docker/dockerfile:1
# One image for every service: `taskmesh serve <service>` runs any of them, `taskmesh up` all of
# them in one process. Dependencies are compiled in their own layer (cargo-chef), so a change to
# Taskmesh's code rebuilds only Taskmesh.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS chef
RUN cargo install --locked cargo-chef@0.1.71
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json -p taskmesh
COPY . .
RUN cargo build --release --locked -p taskmesh \
 && install -D target/release/taskmesh /out/taskmesh \
 && mkdir -p /out/data/media

# glibc and CA certificates, no shell, no package manager; runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="taskmesh" \
      org.opencontainers.image.description="Taskmesh: an event-driven task platform (every service in one binary)" \
      org.opencontainers.image.source="https://github.com/taskmesh/taskmesh" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=builder /out/taskmesh /usr/local/bin/taskmesh
# Where media-svc keeps files on a volume: owned by the runtime user, so a fresh named volume
# mounted here is too.
COPY --from=builder --chown=65532:65532 /out/data /data
USER nonroot:nonroot
WORKDIR /home/nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/taskmesh"]
CMD ["up"]
