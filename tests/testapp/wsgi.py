"""WSGI entry point for the multi-process tests (gunicorn against the test database)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.testapp.server_settings")

application = get_wsgi_application()
