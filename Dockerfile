# gitops-bot: the GitHub App service. Build: docker build -t gitops-bot .
# Run:   docker run -p 8080:8080 --env-file bot.env gitops-bot            (web + in-process worker)
#        docker run --env-file bot.env gitops-bot worker                  (worker only)
# The image runs as an unprivileged user, holds no secret, and never runs anything from a PR:
# kustomize is called without exec/alpha plugins or remote bases (see docs/deploy.md).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build the virtual environment ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY config ./config
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .

# --- the kustomize binary (the renderer shells out to `kustomize build`) -----------------------
# Pin the release and pass its SHA-256 from the release page's checksums.txt:
#   docker build --build-arg KUSTOMIZE_SHA256=<sha256 of kustomize_v5.5.0_linux_amd64.tar.gz> .
# Without a checksum the build fails rather than trusting the download.
FROM ${PYTHON_IMAGE} AS kustomize
ARG KUSTOMIZE_VERSION=5.5.0
ARG TARGETARCH=amd64
ARG KUSTOMIZE_SHA256
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && test -n "${KUSTOMIZE_SHA256}" || { echo "set --build-arg KUSTOMIZE_SHA256=..." >&2; exit 1; } \
 && curl -fsSLo /tmp/kustomize.tar.gz \
    "https://github.com/kubernetes-sigs/kustomize/releases/download/kustomize%2Fv${KUSTOMIZE_VERSION}/kustomize_v${KUSTOMIZE_VERSION}_linux_${TARGETARCH}.tar.gz" \
 && echo "${KUSTOMIZE_SHA256}  /tmp/kustomize.tar.gz" | sha256sum -c - \
 && tar -xzf /tmp/kustomize.tar.gz -C /usr/local/bin kustomize \
 && /usr/local/bin/kustomize version

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# git: bare mirrors of the GitOps repositories; gnupg and openssh-client: commit signature checks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git gnupg openssh-client ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 gitops-bot \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/gitops-bot --create-home gitops-bot
COPY --from=build /opt/venv /opt/venv
COPY --from=kustomize /usr/local/bin/kustomize /usr/local/bin/kustomize
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=8080 \
    GITOPS_BOT_DATA_DIR=/var/lib/gitops-bot/data \
    DATABASE_URL=sqlite:////var/lib/gitops-bot/gitops-bot.db \
    HOME=/var/lib/gitops-bot
USER 10001:10001
WORKDIR /var/lib/gitops-bot
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=3)"
ENTRYPOINT ["tini", "--", "gitops-bot"]
CMD ["serve"]
