"""The example project's tests' settings (tests/example/): the jobs suite's, and the example's
apps, served in-process with the test app's URLs (tests/urls.py). The example service as its
own server processes runs with tests/settings/example_server.py instead."""

import os
import tempfile

# The service's own OpenAPI settings: its schema is what tests/example/test_schema.py checks.
from example_project.openapi_settings import OPENAPI_SETTINGS
from tests.settings.jobs import *  # noqa: F403
from tests.settings.jobs import INSTALLED_APPS, REST_FRAMEWORK

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "django.contrib.staticfiles",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "example_project.workspaces",
    "example_project.subscribers",
    "example_project.letters",
]
STATIC_URL = "static/"
SPECTACULAR_SETTINGS = OPENAPI_SETTINGS
# What the example service stores (import CSVs, export files) never lands in the checkout;
# tests that read those files set their own (tests/example/test_support.py: export_media).
MEDIA_ROOT = os.path.join(tempfile.gettempdir(), "idempotency-jobs-tests-media")
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
