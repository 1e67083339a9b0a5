# shopkeeper: multi-stage build on Debian bookworm.
#
#   docker build -t shopkeeper .          (or: make image, with podman; see docs/operations.md "Deploy")
#   docker run -p 8080:8080 -v "$PWD/models/demo:/model:ro" -v shopkeeper-state:/state \
#     -v "$PWD/deploy/api-keys:/run/secrets/shopkeeper-api-keys:ro" \
#     -e SHOPKEEPER_API_KEYS_FILE=/run/secrets/shopkeeper-api-keys shopkeeper
#
# API keys come from a secret (compose: `secrets:`; Kubernetes: a Secret
# volume, see deploy/). Without keys the server, listening on 0.0.0.0, is in
# protected mode: reads are served, writing and admin routes answer 403
# protected_mode (--insecure-no-auth turns that off, on a trusted network).
#
# The build steps live in deploy/build.sh, which CI runs natively too.
# Configuration: flags after the image name (`... shopkeeper serve --threads 4`)
# or SHOPKEEPER_* environment variables (SHOPKEEPER_THREADS=4); a flag wins.

FROM docker.io/library/debian:bookworm-slim AS build
WORKDIR /src
COPY deploy/build.sh deploy/build.sh
RUN deploy/build.sh deps
COPY Makefile ./
COPY include ./include
COPY src ./src
COPY console ./console
RUN deploy/build.sh build && deploy/build.sh check-runtime && deploy/build.sh install /out

FROM docker.io/library/debian:bookworm-slim
COPY deploy/build.sh /usr/local/lib/shopkeeper/build.sh
RUN BUILD_SH_CLEAN_APT=1 /usr/local/lib/shopkeeper/build.sh runtime-deps \
    && useradd --system --uid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin shopkeeper \
    && mkdir -p /model /state && chown shopkeeper:shopkeeper /state
COPY --from=build /out/ /
# shopkeeper-publish: train a new model version and roll it out
# (deploy/publish-model.sh; the compose retrain job and the k8s CronJob).
COPY deploy/publish-model.sh /usr/local/bin/shopkeeper-publish
RUN /usr/local/lib/shopkeeper/build.sh check-ldd /usr/local/bin/shopkeeper \
    && mkdir -p /models && chown shopkeeper:shopkeeper /models /model

USER shopkeeper
# /model: a trained model directory, mounted read-only.
# /models (compose, Kubernetes): a directory of model versions with a
#         `current` symlink (SHOPKEEPER_MODEL=/models/current), written by
#         shopkeeper-publish.
# /state: the server's own LMDB state; keep it across restarts.
VOLUME ["/model", "/state"]
ENV SHOPKEEPER_MODEL=/model \
    SHOPKEEPER_STATE=/state \
    SHOPKEEPER_LISTEN=0.0.0.0:8080
EXPOSE 8080
# SIGTERM: stop accepting, finish requests in flight (SHOPKEEPER_DRAIN_TIMEOUT,
# 5 s by default: keep it under the engine's stop timeout), exit 0.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${SHOPKEEPER_LISTEN##*:}/healthz" || exit 1
ENTRYPOINT ["shopkeeper"]
CMD ["serve"]
