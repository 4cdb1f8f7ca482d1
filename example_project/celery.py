"""The Celery app of the example service, for ``TASKS_BACKEND=celery`` (Django 6.0 and newer).

Worker: ``celery -A example_project worker``. The web process sends jobs through this app too
(``TASKS[...]["OPTIONS"]["CELERY_APP"]``); its settings are the ``CELERY_*`` Django settings.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Imports every installed app's ``tasks`` module in the worker: ``idempotency_jobs.jobs.tasks``
# builds ``run_job`` on the Celery backend, which registers it with this app.
app.autodiscover_tasks()
