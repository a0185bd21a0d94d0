# Unitscope: one image for the dashboard (gunicorn) and the precompute job (docker-compose.yml runs both).
# Builds from this repository alone: `docker build -t unitscope .` (nothing from outside the clone).
#
# Build arguments:
#   PYTHON_IMAGE   the slim base (pinned; bump deliberately)
#   TORCH_INDEX    where pip finds torch/torchvision: the CPU-only wheels by default (about 4 GB smaller
#                  than PyPI's CUDA build); set it to "" for PyPI's default wheels (GPU servers).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------- build: a venv with the pinned requirements
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY requirements.txt constraints.txt ./
# requirements.txt pins the direct dependencies, constraints.txt everything (the README says how to bump)
RUN if [ -n "$TORCH_INDEX" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX"; fi \
    && /opt/venv/bin/pip install -r requirements.txt -c constraints.txt

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE}
# Chromium renders figure exports (kaleido); fonts for its text; tini reaps Chromium's children.
RUN apt-get update \
    && apt-get install -y --no-install-recommends chromium fonts-dejavu-core tini \
    && rm -rf /var/lib/apt/lists/*
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    BROWSER_PATH=/usr/bin/chromium \
    UNITSCOPE_DATA=/data UNITSCOPE_HOST=0.0.0.0 UNITSCOPE_PORT=8050 \
    GUNICORN_WORKERS=2 GUNICORN_THREADS=4
COPY --from=build /opt/venv /opt/venv

RUN useradd --create-home --uid 1000 --user-group unitscope \
    && mkdir -p /data && chown unitscope:unitscope /data
WORKDIR /app
COPY --chown=root:root . .
USER unitscope
VOLUME /data
EXPOSE 8050

# /health is 200 once a build is published and readable (open even with access control on)
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["python", "deploy/healthcheck.py"]
ENTRYPOINT ["tini", "--"]
# the app; the precompute service overrides this with deploy/precompute.sh
CMD ["bash", "deploy/app.sh"]
