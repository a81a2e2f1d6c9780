# syntax=docker/dockerfile:1
#
# The st2pack tool image, for CI jobs: st2pack and st2-pack-install, uv, git, CA certificates and
# Debian bookworm's Python (CPython 3.11 at /usr/bin/python3, with venv).
#
#   docker build -t st2pack:0.1.0 .
#   docker run --rm -v "$PWD:/work" -w /work st2pack:0.1.0 validate .
#
# Which Python it carries matters: a virtualenv only works with the interpreter it was built
# with, at the same path. The st2 runtime images run other Pythons (st2 3.8: CPython 3.8 at
# /opt/stackstorm/st2/bin/python on Ubuntu focal), so virtualenvs built here do not work in a
# cluster. Use this image for `st2pack validate`, `inspect`, `base-image`, and `build --root` of
# trees installed elsewhere; build packs with their virtualenvs in the builder image
# (builder-image/Dockerfile), whose Python is the cluster's.

# Rust toolchain image tag: 1 (latest stable), or a version such as 1.95 (the crate needs 1.89+).
ARG RUST_VERSION=1

# The binaries, static (x86_64-unknown-linux-musl, from scripts/build-static.sh): they need no
# library from the final stage, so any base works, and the same files run in any other image.
FROM rust:${RUST_VERSION}-bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
# musl-gcc compiles the vendored C libraries (libgit2, OpenSSL, libssh2, zlib, zstd) for musl.
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY scripts/build-static.sh ./scripts/
# The commit `--version` names (.git is not in the build context):
#   docker build --build-arg ST2PACK_BUILD_COMMIT="$(git rev-parse --short=12 HEAD)" ...
ARG ST2PACK_BUILD_COMMIT=unknown
# Cache mounts (BuildKit, the default builder since Docker 23) keep the crate downloads and
# compiled dependencies between builds; the binaries are copied out of dist/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    bash scripts/build-static.sh \
    && mkdir -p /out \
    && cp dist/st2pack dist/st2-pack-install /out/

# uv, the fast virtualenv engine, from PyPI: its wheel carries a standalone binary.
FROM python:3-slim AS uv
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --root-user-action=ignore "uv==${UV_VERSION}" \
    && uv --version

FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
# ca-certificates: registries, git servers and indexes over TLS; git: pip requirements given as
# git+https:// URLs; python3 and python3-venv: the fallback virtualenv engine and the default
# interpreter (3.11). Nothing for st2pack itself: it is static.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /usr/local/bin/uv /usr/local/bin/uv
COPY --from=build /out/st2pack /out/st2-pack-install /usr/local/bin/
# uv must build with the interpreter it is given, never one it downloads.
ENV UV_PYTHON_DOWNLOADS=never
RUN st2pack --version && st2-pack-install --version && python3 --version
ENTRYPOINT ["st2pack"]
