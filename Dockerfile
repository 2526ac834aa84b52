# faust-rs in a small runtime image: `docker build -t faust-rs .`
# The binary links OpenSSL, libcurl, zlib and librdkafka statically (see README "Building"):
# the runtime stage needs only glibc and CA certificates.
FROM rust:1.89-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake perl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked && strip target/release/faust-rs

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/faust-rs /usr/local/bin/faust-rs
USER 65532:65532
EXPOSE 6066
ENTRYPOINT ["/usr/local/bin/faust-rs"]
CMD ["--help"]
