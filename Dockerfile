# Stagegate: the Django app served by gunicorn. docker-compose.yml adds PostgreSQL,
# Redis, the Celery worker and beat; the same image runs all three app services.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    # Run from the source tree: settings find templates/ and static/ next to config/.
    PYTHONPATH=/app \
    STAGEGATE_VAR_DIR=/var/lib/stagegate \
    STAGEGATE_STATIC_ROOT=/app/staticfiles \
    STAGEGATE_ARTIFACT_ROOT=/data/artifacts

WORKDIR /app

# Dependencies first, in their own layer, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The app itself (.dockerignore keeps out tests, venvs, var/ and VCS data).
COPY . .
RUN pip install --no-deps . \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/stagegate --shell /usr/sbin/nologin stagegate \
 && mkdir -p /var/lib/stagegate /data/artifacts /app/staticfiles \
 && chown -R stagegate:stagegate /var/lib/stagegate /data/artifacts /app/staticfiles

USER stagegate

# Static files are collected into the image (whitenoise serves them); the key is build-only.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0

VOLUME ["/data/artifacts"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
  CMD python -c "import os, sys, urllib.request as u; host = os.environ.get('DJANGO_ALLOWED_HOSTS', '').split(',')[0].strip().lstrip('.').replace('*', '') or 'localhost'; sys.exit(u.urlopen(u.Request('http://127.0.0.1:8000/health', headers={'Host': host}), timeout=4).status != 200)"

# gthread workers: artifact up/downloads stream for a long time without blocking the other requests.
# Request lines and headers as long as MLflow's server (uvicorn/h11: 16 KiB) takes; gunicorn caps a line at 8190 unless 0.
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", \
     "--worker-class", "gthread", "--timeout", "300", "--keep-alive", "30", "--access-logfile", "-", \
     "--limit-request-line", "0", "--limit-request-field_size", "16384"]
