# syntax=docker/dockerfile:1
# rollbackd container image.
#
# NOT built in CI: the CI machines have no container engine (no Docker
# daemon, no buildah), so this file is checked by review only. Build it with:
#
#     docker build -t rollbackd:0.1.0 .
#
# Stage 1 compiles the release binary; stage 2 is distroless (glibc + libgcc,
# no shell, no package manager) and runs as the image's non-root user
# 65532:65532, which the Helm chart's securityContext expects.

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace (fakekube is a member, so Cargo needs its manifest);
# .dockerignore keeps target/, .git and local tools out of the context.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p rollbackd \
    && install -D -m 0755 target/release/rollbackd /out/rollbackd \
    && mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/rollbackd /usr/local/bin/rollbackd
# The journal lives here, writable by the non-root user; mount a volume over
# it to keep the journal (the chart does: PVC or emptyDir).
COPY --from=build --chown=65532:65532 /out/data /var/lib/rollbackd
WORKDIR /var/lib/rollbackd
# MALLOC_ARENA_MAX=2: glibc keeps freed memory per arena; two arenas hold a
# storm of large alert groups under 64 MiB (75 MiB with the default) at no
# cost in throughput (bench/README.md, RSS).
ENV ROLLBACKD_LISTEN=0.0.0.0:9095 \
    ROLLBACKD_JOURNAL=/var/lib/rollbackd/rollbackd.db \
    MALLOC_ARENA_MAX=2
USER 65532:65532
EXPOSE 9095
ENTRYPOINT ["/usr/local/bin/rollbackd", "serve"]
