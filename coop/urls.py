from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

admin.site.site_header = "Cooperative back office"
admin.site.site_title = "Co-op billing"
admin.site.index_title = "Billing"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/twilio/", include("notifications.urls")),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
