# capahub: the hub as a container image (docs/deployment.md).
#
#   docker build -t capahub .
#   docker run -e CAPAHUB_DATABASE_URL=postgresql://... -p 8000:8000 capahub
#
# Serves `capahub serve` on 0.0.0.0:8000 with access control on (CAPAHUB_AUTH=on) and JSON
# logs; every other setting comes from CAPAHUB_* environment variables (docs/settings.md).
# compose.yaml runs two of these on PostgreSQL behind nginx.

# ---- build: the package and its dependencies in a virtualenv, the web assets vendored ----
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/capahub
ENV PATH=/opt/capahub/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY metadata ./metadata
COPY catalog ./catalog
COPY resolvers ./resolvers
COPY scripts/fetch-assets ./scripts/fetch-assets
# Dependencies and the package, then the playground's and explorer's files from the npm
# registry (checked against their hashes; NPM_CONFIG_REGISTRY picks a mirror), then the
# package once more so that the installed copy holds them. Without them the API still works.
ARG NPM_CONFIG_REGISTRY=
RUN pip install . \
 && (python scripts/fetch-assets || echo "playground assets unavailable; the API still works" >&2) \
 && pip install --no-deps --force-reinstall .

# ---- runtime: the virtualenv alone, run by an unprivileged user ----
FROM python:3.11-slim
ENV PATH=/opt/capahub/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CAPAHUB_HOST=0.0.0.0 \
    CAPAHUB_PORT=8000 \
    CAPAHUB_AUTH=on \
    CAPAHUB_LOG_FORMAT=json
COPY --from=build /opt/capahub /opt/capahub
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/capahub --create-home capahub
USER capahub
WORKDIR /var/lib/capahub
EXPOSE 8000
# Alive (not "caught up": that is /readyz, which compose.yaml and load balancers ask).
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('CAPAHUB_PORT', '8000'), timeout=2)"]
CMD ["capahub", "serve"]
