import os

from django.core.wsgi import get_wsgi_application

from config.checks import business_hours_require, production_secrets_require

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# gunicorn loads this in its master (--preload), so without its secrets (or with business hours it
# cannot read) the web process exits at once with one line instead of serving requests it cannot
# verify or answer.
production_secrets_require()
business_hours_require()
application = get_wsgi_application()
