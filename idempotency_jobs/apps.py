from django.apps import AppConfig, apps


class IdempotencyJobsConfig(AppConfig):
    name = "idempotency_jobs"
    verbose_name = "Idempotency and jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from idempotency_jobs import checks  # noqa: F401  (registers the system checks)

        if apps.is_installed("drf_spectacular"):
            from idempotency_jobs import schema_extension  # noqa: F401  (registers it)
