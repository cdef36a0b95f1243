FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PORT=8000

WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time; the settings refuse to load without the
# production secrets, so placeholders stand in for this one step only.
RUN DEBUG=False SECRET_KEY=build FACEBOOK_APP_SECRET=build FACEBOOK_VERIFY_TOKEN=build \
    FACEBOOK_PAGE_ACCESS_TOKEN=build GROQ_API_KEY=build \
    python manage.py collectstatic --noinput \
 && useradd --create-home --uid 1000 app && mkdir -p var && chown app var

USER app
EXPOSE 8000
# The Procfile is the one definition of the processes: `honcho start web|worker|release`.
CMD ["honcho", "start", "web"]
