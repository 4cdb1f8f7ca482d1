from django.urls import include, path
from rest_framework.routers import SimpleRouter

from tests.testapp import views

router = SimpleRouter()
router.register("widgets", views.WidgetViewSet, basename="widget")
router.register("stannp-widgets", views.StannpStyleViewSet, basename="stannp-widget")
router.register("throttled-widgets", views.ThrottledViewSet, basename="throttled-widget")

urlpatterns = [
    path("", include(router.urls)),
    path("fn-widgets", views.widget_function),
    path("view-widgets", views.WidgetAPIView.as_view()),
    path("plain-widgets", views.NoKeyNeededView.as_view()),
    path("echo", views.echo),
]

# Added for the core test suite.
from django.contrib import admin  # noqa: E402

core_router = SimpleRouter()
core_router.register("listed-widgets", views.ListedWidgetViewSet, basename="listed-widget")
core_router.register("hooked-widgets", views.HookedWidgetViewSet, basename="hooked-widget")
core_router.register("store-4xx-widgets", views.StoreClientErrorsViewSet, basename="store-4xx")
core_router.register("peeking-widgets", views.PeekingWidgetViewSet, basename="peeking-widget")
urlpatterns += [
    path("", include(core_router.urls)),
    path("admin/", admin.site.urls),
    path("hooked-fn-widgets", views.hooked_function),
    path("stannp-fn-widgets", views.stannp_function),
    path("throttled-fn-widgets", views.throttled_function),
    path("stream-fn-widgets", views.stream_function),
    path("methods-fn-widgets", views.methods_function),
    path("peeking-fn-widgets", views.peeking_function),
]

# Added for the example project's tests: its API under the same paths as in the service.
from example_project.problems import problems  # noqa: E402

urlpatterns += [path("", include("example_project.api_urls")), path("problems/", problems)]

# Added for the jobs test suite.
from tests.testapp.jobs import WidgetJobViewSet  # noqa: E402

jobs_router = SimpleRouter()
jobs_router.register("widget-jobs", WidgetJobViewSet, basename="widget-job")
urlpatterns += [path("", include(jobs_router.urls))]

# Added for the core test suite: callers that are no model instances.
urlpatterns += [path("stateless-fn-widgets", views.stateless_function)]

short_lived_router = SimpleRouter()
short_lived_router.register("short-lived-widgets", views.ShortLivedViewSet, basename="short-lived")
urlpatterns += [
    path("", include(short_lived_router.urls)),
    path("short-lived-fn-widgets", views.short_lived_function),
]

# The decorator's place around @action (tests/keys/test_checks.py).
action_order_router = SimpleRouter()
action_order_router.register("action-order", views.ActionOrderViewSet, basename="action-order")
urlpatterns += [path("", include(action_order_router.urls))]
