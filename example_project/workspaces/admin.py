from django.contrib import admin

from .models import ApiKey, Workspace


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "workspace", "label", "created_at", "revoked_at"]
    list_filter = ["workspace"]
    readonly_fields = ["prefix", "secret_hash"]
