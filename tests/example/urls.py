"""The example service's URLs with test-only knobs, for tests/reliability/ and friends.

``POST /v1/jobs/subscriber-imports`` is the example's own view, plus, only when a test sends
them (headers are not part of the request's fingerprint, so a retry without them is the same
request):

* ``X-Test-Hold: <name>``: after writing the job row (inside the idempotent transaction) the
  request writes its pid to ``<RELIABILITY_HOLD_DIR>/<name>.held`` and waits (at most 60 s) for
  ``<name>.release``: a request caught mid-flight, holding its key's claim.
* ``X-Test-Sleep: <seconds>``: the same place, a short pause instead.
* ``X-Test-Leaky-Headers: 1``: the answer also carries ``Set-Cookie`` and auth headers.
* ``X-Test-On-Commit: 1`` (in-process tests only): the callables in ``ON_COMMIT`` run when the
  request's transaction commits, first of its commit hooks (before the key store's own).

``/test/throttled-imports`` is the same view with a one-request-per-hour throttle.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.routers import SimpleRouter
from rest_framework.throttling import UserRateThrottle

from example_project import urls as example_urls
from example_project.subscribers.views import SubscriberImportJobViewSet
from idempotency_jobs.models import Job

HOLD_LIMIT = 60.0
ON_COMMIT: list[Callable[[], None]] = []


def hold(request: Request) -> None:
    if request.headers.get("X-Test-On-Commit"):
        transaction.on_commit(lambda: [hook() for hook in ON_COMMIT])
        hooks = transaction.get_connection().run_on_commit
        hooks.insert(0, hooks.pop())  # test-only: ahead of the hook registered before the view
    if seconds := request.headers.get("X-Test-Sleep"):
        time.sleep(min(float(seconds), HOLD_LIMIT))
    name = request.headers.get("X-Test-Hold")
    if not name:
        return
    directory = Path(settings.RELIABILITY_HOLD_DIR)
    # Written whole, then renamed: a test polling for the marker never reads it half written.
    partial = directory / f"{name}.held.partial"
    partial.write_text(str(os.getpid()))
    partial.replace(directory / f"{name}.held")
    release = directory / f"{name}.release"
    deadline = time.monotonic() + HOLD_LIMIT
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)


class KnobbedImportJobViewSet(SubscriberImportJobViewSet):
    def perform_create_job(self, params: Any, owner: str) -> Job:
        job = super().perform_create_job(params, owner)
        hold(self.request)
        return job

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.headers.get("X-Test-Leaky-Headers"):
            response.set_cookie("sessionid", "leaky-session-cookie")
            response["WWW-Authenticate"] = 'Bearer realm="leaky"'
            response["Authorization"] = "Bearer leaky-authorization"
            response["Proxy-Authenticate"] = 'Basic realm="leaky"'
            response["X-Request-Echo"] = "not-a-replay-header"
        return response


class OnePerHour(UserRateThrottle):
    rate = "1/hour"

    def get_cache_key(self, request: Request, view: Any) -> str:
        return self.cache_format % {"scope": "test-imports", "ident": request.user.pk}


class ThrottledImportJobViewSet(SubscriberImportJobViewSet):
    throttle_classes = [OnePerHour]


router = SimpleRouter(trailing_slash=False)
router.register("v1/jobs/subscriber-imports", KnobbedImportJobViewSet, basename="knobbed-import")
router.register("test/throttled-imports", ThrottledImportJobViewSet, basename="throttled-import")

urlpatterns = [path("", include(router.urls)), path("", include("example_project.urls"))]
handler400, handler404, handler500 = (
    example_urls.handler400,
    example_urls.handler404,
    example_urls.handler500,
)
