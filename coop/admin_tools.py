"""Admin helpers for the big tables (members, accounts, locations, meters, installations, status
changes): a cooperative has up to a million of each, and a clerk lives in these list pages.

- `BoundedCountPaginator` never counts more than `COUNT_LIMIT` rows: Django's paginator runs
  `SELECT COUNT(*)` over the whole filtered table on every list page, which on a million rows
  is a sequential scan each time a clerk opens the page.
- `BigTableAdmin` puts it on a ModelAdmin, turns off the other unbounded counts (the "N total"
  beside the search box, filter facets) and searches with `UNION` instead of one `OR` across
  joins (see `get_search_results`), and understands a phone number typed in any common format.
- `HistoryAdmin` shows django-simple-history's change history without its "Revert" (a revert
  writes every field of an old version, status included, past the services and their audit).
- `NoCardNumbersMixin` (under both) refuses a card number in every free-text field of the forms.
"""

import re

import phonenumbers
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import models
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import smart_split, unescape_string_literal
from simple_history.admin import SimpleHistoryAdmin

from coop.validators import no_card_number

COUNT_LIMIT = 10_000
MIN_WORD = 3  # shorter search words are dropped beside longer ones (see get_search_results)

# Digits with the punctuation people type around them: "(715) 532-5524", "+1 715.532.5524".
_PHONE_LIKE = re.compile(r"^\+?[\d\s().\-]{7,}$")

_SEARCH_PREFIXES = {"^": "istartswith", "=": "iexact", "@": "search"}


class BoundedCountPaginator(Paginator):
    """A paginator whose count stops at `limit`.

    The count is `SELECT COUNT(*) FROM (SELECT id ... LIMIT limit + 1)`: at most limit + 1 rows
    are read however large the table. When more rows match, `count` is `limit` (so the page
    links stop at row `limit`) and `capped` is true; the list page then says "more than 10,000 —
    refine your search".
    """

    limit = COUNT_LIMIT

    @cached_property
    def _bounded_count(self) -> int:
        if not isinstance(self.object_list, QuerySet):
            return len(self.object_list)
        # Order and selected columns don't change how many rows there are; dropping them lets
        # the database stop after limit + 1 rows of the cheapest index it has.
        return self.object_list.order_by().values("pk")[: self.limit + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self._bounded_count, self.limit)

    @property
    def capped(self) -> bool:
        return self._bounded_count > self.limit


def phone_search_value(term: str) -> str | None:
    """`term` in E.164 if it reads as a valid phone number of the cooperative's region."""
    if not _PHONE_LIKE.match(term):
        return None
    try:
        number = phonenumbers.parse(term, settings.PHONENUMBER_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _unquote(bit: str) -> str:
    if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
        return unescape_string_literal(bit)
    return bit


def _search_lookup(field: str) -> str:
    if field[0] in _SEARCH_PREFIXES:
        return f"{field[1:]}__{_SEARCH_PREFIXES[field[0]]}"
    return f"{field}__icontains"


class NoCardNumbersMixin:
    """Every free-text field (CharField, TextField without choices) a clerk types into refuses a
    payment card number, shown on the field (coop/validators.py).

    `card_number_exempt_fields` names identifiers that are not free text and may be long runs of
    digits (a meter's serial: about one 16-digit serial in ten passes the Luhn check)."""

    card_number_exempt_fields: tuple[str, ...] = ()

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if (
            formfield is not None
            and isinstance(db_field, models.CharField | models.TextField)
            and not db_field.choices
            and db_field.name not in self.card_number_exempt_fields
        ):
            formfield.validators = [*formfield.validators, no_card_number]
        return formfield


class BigTableAdmin(NoCardNumbersMixin, admin.ModelAdmin):
    """A ModelAdmin for a table with up to a million rows.

    Searching: `search_fields` keep Django's meaning (`^` starts with, `=` exact, none: contains;
    all case-insensitive), but every field is searched by its own subquery and the matches are
    combined with UNION. Django's own search is one `WHERE a OR b OR c` over the joined tables
    (member, location, installations, meters): an OR across tables cannot use any one index, so
    PostgreSQL joins and filters every row. Each UNION branch uses its index (trigram for
    "contains", btree for "starts with"/"exact") and the UNION removes the duplicates a
    many-valued join (a location's several meters) would make, so the list needs no DISTINCT.

    Words of one or two characters are ignored when the search has longer words (they have no
    trigram, so matching them reads the whole table).

    If the whole search term is a phone number of the cooperative's region ("(715) 532-5524",
    "715.532.5524", "+17155325524"), it is also matched exactly, in E.164, against
    `phone_search_field`, and the term is not split into words.
    """

    paginator = BoundedCountPaginator
    show_full_result_count = False  # the "N total" beside the search box is a full COUNT(*)
    show_facets = admin.ShowFacets.NEVER  # one COUNT per filter choice over the whole table
    phone_search_field: str | None = None

    def get_search_results(self, request, queryset, search_term):
        search_fields = self.get_search_fields(request)
        term = search_term.strip()
        if not (search_fields and term):
            return queryset, False
        lookups = [_search_lookup(str(field)) for field in search_fields]
        base = self.model._default_manager.order_by()
        phone = phone_search_value(term) if self.phone_search_field else None
        bits = [term] if phone else [_unquote(bit) for bit in smart_split(term)]
        # A word of one or two characters ("8" in "W150003 Highway 8", "E" in "County Road E")
        # has no trigram, so "contains" it cannot use an index and reads whole tables; beside
        # longer words it narrows little, so it is left out (the results may be a few more).
        bits = [bit for bit in bits if len(bit) >= MIN_WORD] or bits
        for bit in bits:
            branches = [base.filter(**{lookup: bit}).values("pk") for lookup in lookups]
            if phone:
                branches.append(base.filter(**{self.phone_search_field: phone}).values("pk"))
            matches = branches[0].union(*branches[1:]) if len(branches) > 1 else branches[0]
            queryset = queryset.filter(pk__in=matches)
        return queryset, False


class HistoryAdmin(NoCardNumbersMixin, SimpleHistoryAdmin):
    """simple-history's change history, read-only: its "Revert" saves an old version whole
    (an account's status included) without going through the services, so it is off."""

    def revert_disabled(self, request, obj=None):
        return True

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)


class NoWritesMixin:
    """No add, change or delete, whatever the user's permissions."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def adopt(obj, saved) -> None:
    """Let the admin (log entry, redirect, message) see the row the service saved."""
    obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})
    obj._state.adding = False


class ServiceSaveMixin:
    """The add and change forms save through the app's services: `create_service(actor=...,
    **fields)` and `update_service(actor=..., <update_kwarg>=obj, **changed fields)`, each
    recording who in the row's history (coop/history.py). The form only validates."""

    create_service = None
    update_service = None
    update_kwarg = ""

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            fields = {name: data[name] for name in form.changed_data if name in data}
            if not fields:
                return  # nothing changed: no write, no history row
            saved = self.update_service(actor=request.user, **{self.update_kwarg: obj}, **fields)
        else:
            fields = {name: data[name] for name in form.fields if name in data}
            saved = self.create_service(actor=request.user, **fields)
        adopt(obj, saved)


def check_constraints_on(form, field: str, candidate: models.Model, *, involving: tuple[str, ...]) -> None:
    """Report on the form's `field` the model constraints over the fields `involving` that
    `candidate` breaks (a row with the form's value and the values the new row will have outside
    the form): constraints a form cannot see by itself, as they involve a field not its own."""
    others = {f.name for f in candidate._meta.fields} - set(involving)
    try:
        candidate.validate_constraints(exclude=others)
    except ValidationError as e:
        form.add_error(field, e.messages)


class NoDeleteMixin:
    """No delete here, whatever the user's permissions: for rows whose writes go through services
    that have no delete (a fee entry is made inactive, a hold is ended, a meter is removed)."""

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class ReadOnlyInline(NoWritesMixin):
    """Mixin for inlines that only show related rows (with a link to each): no add, change or
    delete here whatever the user's permissions, which keep applying on the rows' own pages."""

    extra = 0
    can_delete = False
    show_change_link = True


class ViewOnlyMixin(NoWritesMixin):
    """Look, never touch: no add, change or delete whatever the user's permissions. For rows only
    the services write (the ledger, payments, the message log)."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class ExactSearchMixin:
    """Search by whole values only, each through its own index, combined with UNION: a
    "contains" search over millions of rows would read the whole table. `exact_search_filters`
    says which lookups a term is tried against (by default each of `search_fields`, exactly)."""

    def exact_search_filters(self, term: str) -> list[dict]:
        return [{lookup: term} for lookup in self.search_fields]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        base = self.model._default_manager.order_by()
        branches = [base.filter(**filters).values("pk") for filters in self.exact_search_filters(term)]
        if not branches:
            return queryset.none(), False
        matches = branches[0].union(*branches[1:]) if len(branches) > 1 else branches[0]
        return queryset.filter(pk__in=matches), False


def account_link(account):
    """A link to the account's admin page, for list columns."""
    if account is None:
        return "—"
    url = reverse("admin:accounts_account_change", args=[account.pk])
    return format_html('<a href="{}">{}</a>', url, account.number)
