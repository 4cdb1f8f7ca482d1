from django.apps import AppConfig, apps


class WorkspacesConfig(AppConfig):
    name = "example_project.workspaces"
    label = "workspaces"
    verbose_name = "Workspaces and API keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        if apps.is_installed("drf_spectacular"):
            from . import schema  # noqa: F401  (registers the API key security schemes)
