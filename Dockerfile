# syntax=docker/dockerfile:1
#
# Production image for the carbon-credits service.
#
# Without configuration the app falls back to an embedded SQLite file and an in-process rate
# limiter, which is fine for a smoke test but not for production. Production must set:
#   DATABASE_URL  e.g. postgresql+psycopg://user:pass@db:5432/carbon
#   REDIS_URL     e.g. redis://redis:6379/0
#   JWT_SECRET    a strong random secret
# Sizing: PORT (default 8000), WEB_CONCURRENCY, GUNICORN_THREADS; see gunicorn.conf.py.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

# Unprivileged runtime user; fixed uid/gid so volume permissions are predictable.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app

WORKDIR /app

COPY pyproject.toml README.md ./
COPY carbon_credits/ carbon_credits/
COPY methodology/ methodology/
# Drop the in-tree build leftovers so only the installed dist-info describes the package.
RUN pip install . \
    && rm -rf build ./*.egg-info

# alembic.ini (script_location = migrations) lets `alembic upgrade head` run from /app.
COPY alembic.ini ./
COPY migrations/ migrations/
COPY app.py gunicorn.conf.py ./

# The code stays root-owned (read-only for the app user). The only writable place is Flask's
# instance folder, /app/instance (next to app.py; gunicorn and `flask --app app` put /app first
# on sys.path), where the default SQLite database is created.
RUN mkdir -p /app/instance && chown app:app /app/instance

USER app

EXPOSE 8000

# Liveness only; slim has no curl. urlopen raises on connection errors and non-2xx -> exit 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)"]

# Exec form: gunicorn is PID 1 and gets SIGTERM directly for a graceful shutdown.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
