from django.apps import AppConfig


class IdempotencyJobsConfig(AppConfig):
    name = "idempotency_jobs"
    verbose_name = "Idempotency and jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
