"""The service's HTTP API, mountable on its own (the test suite includes just this)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from example_project.letters.views import LetterCreateView, LetterDetailView
from example_project.subscribers.views import (
    SubscriberExportFileView,
    SubscriberExportJobViewSet,
    SubscriberImportJobViewSet,
    SubscriberListView,
)

router = SimpleRouter(trailing_slash=False)
router.register(
    "v1/jobs/subscriber-imports", SubscriberImportJobViewSet, basename="subscriber-import-job"
)
router.register(
    "v1/jobs/subscriber-exports", SubscriberExportJobViewSet, basename="subscriber-export-job"
)

urlpatterns = [
    path("v1/subscribers", SubscriberListView.as_view(), name="subscriber-list"),
    path(
        "v1/jobs/subscriber-exports/<str:id>/file",
        SubscriberExportFileView.as_view(),
        name="subscriber-export-file",
    ),
    path("", include(router.urls)),
    path("api/v1/letters/create", LetterCreateView.as_view(), name="letter-create"),
    path("api/v1/letters/get/<str:id>", LetterDetailView.as_view(), name="letter-detail"),
    path("v1/schema", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("v1/redoc", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]
