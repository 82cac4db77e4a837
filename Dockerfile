# syntax=docker/dockerfile:1
# The taskfactory binary on a slim Debian, run as a non-root user. Build context: the repo.
#   docker build -t taskfactory .      docker run --rm taskfactory --help

FROM rust:1.95-bookworm AS build
# prost-wkt-types' build script (through the Temporal SDK) needs protoc.
RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and the target dir are build caches: a rebuild compiles only what changed.
# The binary is copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p taskfactory \
    && install -m 0755 target/release/taskfactory /usr/local/bin/taskfactory

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 taskfactory \
    && useradd --system --uid 10001 --gid taskfactory --no-create-home --shell /usr/sbin/nologin taskfactory
COPY --from=build /usr/local/bin/taskfactory /usr/local/bin/taskfactory
COPY examples /opt/taskfactory/examples
WORKDIR /opt/taskfactory
# The API (TASKFACTORY_API_ADDR) and the worker's metrics (TASKFACTORY_METRICS_ADDR), as
# docker-compose.dev.yml sets them.
EXPOSE 8080 9464
# Numeric, so runtimes that insist on a non-root user (runAsNonRoot) can check it.
USER 10001:10001
ENTRYPOINT ["taskfactory"]
CMD ["--help"]
