from django.contrib import admin
from django.contrib.staticfiles.views import serve
from django.urls import include, path, re_path

from example_project.problems import problems

urlpatterns = [
    path("", include("example_project.api_urls")),
    path("admin/", admin.site.urls),
    # What each problem's ``type`` (IDEMPOTENCY_JOBS["PROBLEM_TYPE_BASE"]) points to.
    path("problems/", problems, name="problems"),
    # The docs page's assets (drf-spectacular-sidecar) served by Django itself, so the example
    # works offline with gunicorn and no collectstatic. A real deployment uses whitenoise or a CDN.
    re_path(r"^static/(?P<path>.*)$", serve, {"insecure": True}),
]

handler400 = "example_project.errors.bad_request"
handler404 = "example_project.errors.not_found"
handler500 = "example_project.errors.server_error"
