from django.contrib import admin
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from conversations import views as conversation_views
from conversations.admin.dashboard import dashboard_view
from messenger.api import MessageSendApi
from messenger.views import MessengerWebhookView

urlpatterns = [
    # Before admin.site.urls, whose catch-all would answer 404; admin_view asks for a staff login.
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("api/health", conversation_views.health, name="health"),
    path("metrics", conversation_views.metrics, name="metrics"),
    path("api/integrations/messenger/send", MessageSendApi.as_view(), name="messenger-send"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("privacy", conversation_views.privacy, name="privacy"),
    path("data-deletion", conversation_views.data_deletion, name="data-deletion"),
    # Both spellings answer directly: a redirect would lose Meta's POST body.
    re_path(r"^api/webhooks/messenger/?$", MessengerWebhookView.as_view(), name="messenger-webhook"),
]
