# The code location's image: the locked dependencies, the package, nothing else. The same image
# serves the code location (its default command), runs each run worker (Dagster's K8s and Docker
# run launchers start runs from the code location's image) and, with another command, the
# webserver and the daemon (docker-compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    VIRTUAL_ENV=/opt/ingest_assets/.venv \
    PATH=/opt/ingest_assets/.venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home

RUN pip install --no-cache-dir uv==0.13.9 \
    && useradd --create-home --uid 10001 ingest

WORKDIR /opt/ingest_assets

# Dependencies first, so that a change of the code alone reuses this layer.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project --python /usr/local/bin/python3.11

COPY README.md ./
COPY ingest_assets ./ingest_assets
COPY deploy/dagster.yaml /opt/dagster/home/dagster.yaml
COPY deploy/workspace.yaml /opt/dagster/workspace.yaml
RUN uv sync --locked --no-dev --python /usr/local/bin/python3.11 \
    && chown -R ingest /opt/dagster

USER 10001
EXPOSE 4000
CMD ["dagster", "code-server", "start", "-m", "ingest_assets.definitions", \
     "--location-name", "ingest_assets", "-h", "0.0.0.0", "-p", "4000"]
