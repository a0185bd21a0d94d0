# Unitscope: the dashboard (gunicorn) and the precompute job share this image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    UNITSCOPE_DATA=/data UNITSCOPE_HOST=0.0.0.0 UNITSCOPE_PORT=8050 \
    GUNICORN_WORKERS=2 GUNICORN_THREADS=4

RUN apt-get update && apt-get install -y --no-install-recommends chromium curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt

COPY . .
RUN useradd --create-home --uid 1000 unitscope && mkdir -p /data && chown unitscope /data
USER unitscope
VOLUME /data
EXPOSE 8050

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s CMD curl -fsS http://127.0.0.1:8050/health || exit 1
CMD ["sh", "-c", "gunicorn app:server --bind 0.0.0.0:${UNITSCOPE_PORT} --workers ${GUNICORN_WORKERS} --threads ${GUNICORN_THREADS}"]
