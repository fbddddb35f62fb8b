"""Every write in the admin goes through a service (issue 11, point 4).

`direct_writes` walks a ModelAdmin as a superuser sees it (the most it can do) and names each way
it could write a row with Django's own save or delete: an add or change page whose `save_model`
is Django's, a delete without a service's `delete_model`, the "delete selected" action without
one for `delete_queryset`, or a writable inline with Django's `save_formset` and `save_related`.
A page that may write must override those to call its service; a page without one must be
read-only (no add, change or delete permission).
"""

import contextlib
from unittest import mock

import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.test import RequestFactory
from django.urls import reverse

from accounts.models import Member, ServiceLocation
from accounts.tests import factories

PROJECT_APPS = ("coop", "accounts", "meters", "billing", "notifications", "portal", "demo")

# Third-party pages whose writes are not the cooperative's records: logins and their devices,
# managed by superusers only (SECURITY.md), and django-axes' lockout records.
NOT_OURS = {
    "auth.user",
    "auth.group",
    "axes.accessattempt",
    "axes.accessfailurelog",
    "axes.accesslog",
    "otp_totp.totpdevice",
}


def _ours(model_admin, name: str) -> bool:
    """Whether the method `name` is defined by the project's code (not Django's or a library's)."""
    for cls in type(model_admin).__mro__:
        if name in cls.__dict__:
            return cls.__module__.split(".")[0] in PROJECT_APPS
    return False


def direct_writes(model_admin, request) -> list[str]:
    problems = []
    may_add = model_admin.has_add_permission(request)
    may_change = model_admin.has_change_permission(request)
    if (may_add or may_change) and not _ours(model_admin, "save_model"):
        problems.append("saves with Django's save_model")
    if model_admin.has_delete_permission(request):
        if not _ours(model_admin, "delete_model"):
            problems.append("deletes with Django's delete_model")
        actions = model_admin.get_actions(request)
        if "delete_selected" in actions and not _ours(model_admin, "delete_queryset"):
            problems.append("bulk-deletes with Django's delete_queryset")
    for inline_class in model_admin.inlines:
        inline = inline_class(model_admin.model, model_admin.admin_site)
        writable = (
            inline.has_add_permission(request, None)
            or inline.has_change_permission(request)
            or inline.has_delete_permission(request)
        )
        if writable and not (_ours(model_admin, "save_formset") or _ours(model_admin, "save_related")):
            problems.append(f"saves the {inline_class.__name__} inline with Django's save_formset")
    return problems


@pytest.fixture
def superuser_request():
    request = RequestFactory().get("/")
    request.user = User(username="root", is_superuser=True, is_staff=True, is_active=True)
    return request


def test_every_admin_page_writes_only_through_services_or_is_read_only(superuser_request):
    found = {}
    for model, model_admin in admin.site._registry.items():
        label = model._meta.label_lower
        if label in NOT_OURS:
            continue
        if problems := direct_writes(model_admin, superuser_request):
            found[label] = problems
    assert found == {}


def test_the_walk_finds_every_registered_page_of_the_project():
    labels = {model._meta.label_lower for model in admin.site._registry}
    for expected in ("accounts.member", "meters.meterinstallation", "billing.tariff", "meters.serviceorder"):
        assert expected in labels
    assert labels >= NOT_OURS, "an exemption names a page that is gone: drop it"


def test_a_page_that_saves_directly_is_caught(superuser_request):
    class DirectMemberAdmin(admin.ModelAdmin):
        inlines = ()

    problems = direct_writes(DirectMemberAdmin(Member, admin.site), superuser_request)
    assert problems == [
        "saves with Django's save_model",
        "deletes with Django's delete_model",
        "bulk-deletes with Django's delete_queryset",
    ]


@contextlib.contextmanager
def _spy(model):
    """The model's page's update service, wrapped to record its calls."""
    page = type(admin.site._registry[model])
    spy = mock.Mock(wraps=page.update_service)
    with mock.patch.object(page, "update_service", staticmethod(spy)):
        yield spy


@pytest.mark.django_db
def test_member_and_location_pages_call_their_services(admin_client):
    member = factories.member()
    location = factories.location()
    with _spy(Member) as update:
        response = admin_client.post(
            reverse("admin:accounts_member_change", args=[member.pk]),
            {
                "first_name": "Changed",
                "last_name": member.last_name,
                "email": member.email,
                "line1": member.line1,
                "city": member.city,
                "state": member.state,
                "postal_code": member.postal_code,
                "accounts-TOTAL_FORMS": "0",
                "accounts-INITIAL_FORMS": "0",
            },
        )
    assert response.status_code == 302
    assert update.call_args.kwargs["first_name"] == "Changed"
    member.refresh_from_db()
    assert member.first_name == "Changed"
    assert member.history.first().history_user.is_superuser
    with _spy(ServiceLocation) as update:
        response = admin_client.post(
            reverse("admin:accounts_servicelocation_change", args=[location.pk]),
            {
                "line1": "9 New Rd",
                "city": location.city,
                "state": location.state,
                "postal_code": location.postal_code,
                "phase": location.phase,
                "amperage": location.amperage or "",
                "meter_base": location.meter_base,
                "rate_class": location.rate_class,
                "meter_installations-TOTAL_FORMS": "0",
                "meter_installations-INITIAL_FORMS": "0",
                "accounts-TOTAL_FORMS": "0",
                "accounts-INITIAL_FORMS": "0",
            },
        )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert update.call_args.kwargs == {"actor": mock.ANY, "location": mock.ANY, "line1": "9 New Rd"}
