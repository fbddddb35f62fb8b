from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

# admin.site is coop.admin_site.CoopAdminSite (titles, two-factor sign-in for staff).

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/twilio/", include("notifications.urls")),
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
]
