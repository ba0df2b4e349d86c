# syntax=docker/dockerfile:1
# Two images from one file, each on distroless, running as a non-root user with no shell:
#
#   docker build -t cloudfront-invalidation-operator .                        # the operator (default, last stage)
#   docker build --target cloudfront-sim -t cloudfront-sim .                  # the CloudFront simulator, for tests and CI
#   docker run --rm cloudfront-invalidation-operator --help
#
# The operator's build compiles only the production binary's crates (`-p`): the simulator, the
# test environment and the developer commands (`cargo xtask`) are never built into it.

# Build on Debian 12, the base of the runtime images below, so the binaries' glibc matches.
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The binary uses rustls (no OpenSSL); aws-lc-sys only needs the C compiler rust:slim has.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package cloudfront-invalidation-operator \
 && cp target/release/cloudfront-invalidation-operator /usr/local/bin/

FROM rust:${RUST_VERSION}-slim-bookworm AS build-sim
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package cloudfront-sim \
 && cp target/release/cloudfront-sim /usr/local/bin/

# The simulator (docs/simulator.md); listens on all interfaces so a Service can reach it.
FROM gcr.io/distroless/cc-debian12:nonroot AS cloudfront-sim
COPY --from=build-sim /usr/local/bin/cloudfront-sim /usr/local/bin/
USER 65532:65532
EXPOSE 8480
ENTRYPOINT ["/usr/local/bin/cloudfront-sim"]
CMD ["--listen", "0.0.0.0:8480"]

# The operator. glibc, libgcc and CA certificates, no shell, no package manager; uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /usr/local/bin/cloudfront-invalidation-operator /usr/local/bin/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cloudfront-invalidation-operator"]
CMD ["run"]
