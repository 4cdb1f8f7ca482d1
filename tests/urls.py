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
