"""The admin app, with coop.admin_site.CoopAdminSite as its default site (`admin.site`).

In INSTALLED_APPS in place of "django.contrib.admin". A module of its own because an app config
is imported before models may be, and the site's module imports forms that use models."""

from django.contrib.admin.apps import AdminConfig


class CoopAdminConfig(AdminConfig):
    default_site = "coop.admin_site.CoopAdminSite"
