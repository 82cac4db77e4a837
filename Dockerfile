# Multi-stage build of the taskfactory binary; runs as a non-root user.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends protobuf-compiler && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p taskfactory

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 taskfactory
COPY --from=build /src/target/release/taskfactory /usr/local/bin/taskfactory
COPY examples /opt/taskfactory/examples
USER taskfactory
ENTRYPOINT ["taskfactory"]
