from django.contrib import admin
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from conversations.apis import public
from conversations.apis.send import MessageSendApi
from conversations.apis.webhooks import MessengerWebhookView
from conversations.insights import views as insights

urlpatterns = [
    # Before admin.site.urls, whose catch-all would answer 404; admin_view asks for a staff login.
    path("admin/dashboard/", admin.site.admin_view(insights.dashboard_view), name="admin-dashboard"),
    path("admin/", admin.site.urls),
    path("api/health", public.health, name="health"),
    path("metrics", insights.metrics, name="metrics"),
    path("api/integrations/messenger/send", MessageSendApi.as_view(), name="messenger-send"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("privacy", public.privacy, name="privacy"),
    path("data-deletion", public.data_deletion, name="data-deletion"),
    # Both spellings answer directly: a redirect would lose Meta's POST body.
    re_path(r"^api/webhooks/messenger/?$", MessengerWebhookView.as_view(), name="messenger-webhook"),
]
