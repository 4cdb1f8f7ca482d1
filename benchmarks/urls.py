from rest_framework.routers import SimpleRouter

from benchmarks.views import VIEWSETS

router = SimpleRouter(trailing_slash=False)
for name, viewset in VIEWSETS.items():
    router.register(name, viewset, basename=name)

urlpatterns = router.urls
