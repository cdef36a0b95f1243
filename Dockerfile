FROM python:3.11-slim

# No PORT here: the settings' default (8000), `.env` or the platform decide it. A container's
# loopback is its own, so the web process listens on every interface whatever DEBUG says.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    BIND_HOST=0.0.0.0

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

# .dockerignore keeps .env, var/ (SQLite data), .git and the local virtualenv out of the image.
COPY . .
# Static files are collected at build time. var/ (and var/metrics, which settings create on
# import, as root here, and var/media, a volume in docker compose) must belong to the user the
# processes run as.
RUN DEBUG=False python manage.py collectstatic --noinput \
 && useradd --create-home --uid 1000 app && mkdir -p var/metrics var/media && chown -R app var

USER app
EXPOSE 8000
# The Procfile is the one definition of the processes; config.procfile becomes one of them
# (web, worker or release), so it is PID 1 and gets the container's SIGTERM itself.
CMD ["python", "-m", "config.procfile", "web"]
