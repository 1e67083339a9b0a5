# shopkeeper: multi-stage build on Debian bookworm.
#   docker build -t shopkeeper .
#   docker run -p 8080:8080 -v $PWD/models/demo:/model:ro -v shopkeeper-state:/state shopkeeper
FROM docker.io/library/debian:bookworm-slim AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        build-essential pkg-config libmicrohttpd-dev libjansson-dev liblmdb-dev libopenblas-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY include ./include
COPY src ./src
COPY bench ./bench
RUN make -j2 all

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        libmicrohttpd12 libjansson4 liblmdb0 libopenblas0-pthread curl gzip \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /nonexistent shopkeeper \
    && mkdir -p /model /state && chown shopkeeper /state
COPY --from=build /src/bin/shopkeeper /usr/local/bin/shopkeeper
USER shopkeeper
VOLUME ["/model", "/state"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["shopkeeper"]
CMD ["serve", "--model", "/model", "--state", "/state", "--listen", "0.0.0.0:8080"]
