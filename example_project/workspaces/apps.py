from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    name = "example_project.workspaces"
    label = "workspaces"
    verbose_name = "Workspaces and API keys"
    default_auto_field = "django.db.models.BigAutoField"
