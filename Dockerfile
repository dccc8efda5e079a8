# Multi-stage build: a static-ish release binary on a distroless base, non-root.
# No Docker engine runs in this project's CI; the image is built elsewhere.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
ARG BCE_REVISION=unknown
ENV BCE_REVISION=${BCE_REVISION}
RUN cargo build --release --locked && cp target/release/barman-cloud-exporter /barman-cloud-exporter

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /barman-cloud-exporter /usr/local/bin/barman-cloud-exporter
USER 65532:65532
EXPOSE 9875
ENTRYPOINT ["/usr/local/bin/barman-cloud-exporter"]
CMD ["--config.file=/etc/barman-cloud-exporter/config.yaml"]
