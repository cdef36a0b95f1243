from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from conversations import views as conversation_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health", conversation_views.health, name="health"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("privacy", conversation_views.privacy, name="privacy"),
]
