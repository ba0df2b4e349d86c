# syntax=docker/dockerfile:1
# The operator's image: one static-ish binary on distroless, running as a non-root user with no
# shell. The same image runs the CloudFront simulator (`simulator` subcommand) for tests.
#
#   docker build -t cloudfront-invalidation-operator .
#   docker run --rm cloudfront-invalidation-operator --help

# Build on Debian 12, the base of the runtime image below, so the binary's glibc matches.
ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The binary uses rustls (no OpenSSL); aws-lc-sys only needs the C compiler rust:slim has.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin cloudfront-invalidation-operator \
 && cp target/release/cloudfront-invalidation-operator /usr/local/bin/

# glibc, libgcc and CA certificates, no shell, no package manager; uid/gid 65532 (nonroot).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/cloudfront-invalidation-operator /usr/local/bin/
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cloudfront-invalidation-operator"]
CMD ["run"]
