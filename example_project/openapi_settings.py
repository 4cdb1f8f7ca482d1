"""The service's drf-spectacular settings: data only, so that the test suite's settings use
them as they are without importing the service's settings (which read the environment)."""

from typing import Any

OPENAPI_SETTINGS: dict[str, Any] = {
    "TITLE": "idempotency_jobs example service",
    "DESCRIPTION": (
        "A Mailrith-like subscriber API (import and export jobs) and a Stannp-like letters "
        "endpoint, both safe to retry with idempotency keys."
    ),
    "VERSION": "1.0.0",
    # One tag per resource (each operation names its own).
    "TAGS": [
        {"name": "subscribers", "description": "The workspace's subscribers."},
        {
            "name": "subscriber-imports",
            "description": "Asynchronous imports of subscribers from CSV text: a job per import.",
        },
        {
            "name": "subscriber-exports",
            "description": "Asynchronous exports of subscribers to CSV: a job, then its file.",
        },
        {"name": "letters", "description": "Letters, as Stannp's Direct Mail API takes them."},
    ],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "SubscriberStatusEnum": "example_project.subscribers.models.Subscriber.Status",
        "JobStatusEnum": "idempotency_jobs.models.Job.Status",
    },
}
