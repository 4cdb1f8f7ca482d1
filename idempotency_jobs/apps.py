from django.apps import AppConfig, apps


class IdempotencyJobsConfig(AppConfig):
    name = "idempotency_jobs"
    verbose_name = "Idempotency and jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)

        if apps.is_installed("drf_spectacular"):
            from . import schema  # noqa: F401  (registers the OpenAPI view extension)
