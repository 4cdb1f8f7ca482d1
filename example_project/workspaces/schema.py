"""OpenAPI security schemes for API keys (imported at startup when drf-spectacular is installed)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyBearerScheme(OpenApiAuthenticationExtension):
    target_class = "example_project.workspaces.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer mrk_…`"}


class ApiKeyBasicScheme(OpenApiAuthenticationExtension):
    target_class = "example_project.workspaces.auth.ApiKeyBasicAuthentication"
    name = "apiKeyBasic"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "The API key as user name and an empty password (`curl -u mrk_…:`).",
        }
