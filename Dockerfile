FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=8000

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time. var/ (and var/metrics, which settings create on
# import, as root here) must belong to the user the processes run as.
RUN DEBUG=False python manage.py collectstatic --noinput \
 && useradd --create-home --uid 1000 app && mkdir -p var/metrics && chown -R app var

USER app
EXPOSE 8000
# The Procfile is the one definition of the processes: `honcho start web|worker|release`.
CMD ["honcho", "start", "web"]
