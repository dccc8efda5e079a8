# syntax=docker/dockerfile:1
# Multi-stage build: the release binary (profile `dist`: LTO) on a distroless base, non-root, the
# binary only. No Docker engine runs in this project's CI; the image is built
# by CI elsewhere:
#
#   docker build --build-arg BCE_REVISION="$(git rev-parse --short=12 HEAD)" -t barman-cloud-exporter .
#
# The build context is the repository minus .dockerignore (target/, .git, ...):
# Cargo.toml names targets (examples) whose files must be present to parse it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# Git revision for barman_cloud_exporter_build_info (.git is not in the context).
ARG BCE_REVISION=unknown
ENV BCE_REVISION=${BCE_REVISION}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --profile dist --locked --bin barman-cloud-exporter \
 && cp target/dist/barman-cloud-exporter /barman-cloud-exporter

# glibc + libgcc only, user 65532, no shell; the same Debian 12 as the build stage.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /barman-cloud-exporter /usr/local/bin/barman-cloud-exporter
USER 65532:65532
EXPOSE 9875
ENTRYPOINT ["/usr/local/bin/barman-cloud-exporter"]
CMD ["--config.file=/etc/barman-cloud-exporter/config.yaml"]
