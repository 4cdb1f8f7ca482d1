from django.apps import AppConfig


class SubscribersConfig(AppConfig):
    name = "example_project.subscribers"
    label = "subscribers"
    verbose_name = "Subscribers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .bulk.files import connect_signals

        connect_signals()
