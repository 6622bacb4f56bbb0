# govit as one image for all three services (`govit serve projects|experts|scheduling`).
#
#     docker build -t govit .
#
# The build stage compiles the release binary; the runtime stage is distroless (glibc, CA
# certificates, no shell) and runs as the unprivileged user 65532.
FROM docker.io/library/rust:1.94-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin govit \
    && cp target/release/govit /usr/local/bin/govit \
    && mkdir -p /out/data/blobs /out/data/keys

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/govit /usr/local/bin/govit
# The data directory belongs to the user the services run as, so that a volume mounted over it
# or under it (a fresh named volume takes the image's ownership) is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/govit
# Embedded databases, document blobs and the log's key file live here unless configured
# elsewhere; mount a volume (or, on PostgreSQL, a shared one for the blobs).
ENV GOVIT_DATA_DIR=/var/lib/govit \
    GOVIT_LOG_FORMAT=json
WORKDIR /var/lib/govit
USER 65532:65532
# gRPC: projects, experts, scheduling; metrics on the admin listener.
EXPOSE 50051 50052 50053 9464
ENTRYPOINT ["/usr/local/bin/govit"]
CMD ["--help"]
