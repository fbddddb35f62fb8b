"""Rendering notices from their templates.

Templates are loaded once per batch (`TemplateSet`, one query) and compiled once, so rendering
ten thousand low-balance notices costs no query per notice. SMS text is rendered without HTML
escaping, its whitespace collapsed and look-alike characters replaced by GSM-7 ones; email gets a
plain-text part and an HTML part (autoescaped, inside templates/notifications/email/layout.html).

Managers write these templates in the admin, so they are compiled by a restricted engine
(`NOTICE_ENGINE`), not the project's: only the tags and filters a notice needs (`SAFE_TAGS`,
`SAFE_FILTERS`), no `{% load %}`, `{% include %}`, `{% extends %}`, `{% debug %}` (which prints
the context and every loaded module), `{% url %}` or `{% csrf_token %}`, no filter that pads or
formats to a width a template chooses (`ljust`, `center`, `stringformat`: a memory bomb), no
`safe`, no tag that binds a computed value to a name, no loop inside a loop (so a template's
output stays about as long as its text and values), and no loaders or context processors. A
template using anything else does not compile, so the admin refuses it with the field's error.
The context is plain values (strings, numbers, lists of dicts), and Django's template language
never reads an attribute starting with "_", so a template can reach nothing but the notice's own
values: `{{ settings.SECRET_KEY }}` is empty.
"""

import datetime
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import Lexer, TokenType
from django.template.defaulttags import ForNode
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from coop import money
from notifications import gsm7
from notifications.defaults import defaults
from notifications.exceptions import TemplateInvalid
from notifications.models import NoticeTemplate
from notifications.notices import COMMON_SAMPLE, SAMPLES, Channel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    html_body: str
    segments: int | None
    template_id: int | None


def usd(value: Decimal | None) -> str:
    """$1,234.50 and -$5.00 (an ASCII minus: it is in GSM-7, the true minus sign is not)."""
    return money.usd(value, minus="-")


def short_time(t: datetime.time) -> str:
    """10am, 2:30pm."""
    hour = t.hour % 12 or 12
    suffix = "am" if t.hour < 12 else "pm"
    return f"{hour}{suffix}" if t.minute == 0 else f"{hour}:{t.minute:02d}{suffix}"


def short_date(d: datetime.date) -> str:
    """Tue Mar 10."""
    return f"{d:%a %b} {d.day}"


def common_context() -> dict:
    return {
        "coop": settings.COOP_SMS_NAME,
        "coop_name": settings.COOP_NAME,
        "help_phone": settings.COOP_HELP_PHONE or "the co-op office",
        "office_phone": settings.COOP_HELP_PHONE,
        "pay_url": settings.COOP_PAY_URL,
    }


def sample_context(notice: str) -> dict:
    return {**common_context(), **COMMON_SAMPLE, **SAMPLES.get(notice, {})}


# No tag that binds a new name to a computed value ({% with %}, {% firstof ... as %}, {% cycle %}):
# rebinding lets a template double or square a string at every step (a memory bomb).
SAFE_TAGS = ("if", "for", "comment", "spaceless")
SAFE_FILTERS = (
    "capfirst",
    "cut",
    "date",
    "default",
    "default_if_none",
    "first",
    "last",
    "length",
    "linebreaks",
    "linebreaksbr",
    "lower",
    "pluralize",
    "slice",
    "striptags",
    "time",
    "title",
    "truncatechars",
    "truncatewords",
    "upper",
    "yesno",
)

# Bounds on what a template may ask for: each filter may grow a value a few times over (escaping,
# <p> tags), so a long chain of them, or a very long template, could still make a huge text.
MAX_FILTERS = 3  # per {{ value }} or tag expression
MAX_LENGTH = 5000  # characters of one part of a template
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")

# The restricted engine's only library (a builtin, so nothing needs {% load %}): the safe tags and
# filters, taken as they are from Django's own.
register = Library()
register.tags.update({name: defaulttags.register.tags[name] for name in SAFE_TAGS})
register.filters.update({name: defaultfilters.register.filters[name] for name in SAFE_FILTERS})


class _NoticeEngine(Engine):
    default_builtins = []  # not Django's defaulttags/defaultfilters/loader_tags


NOTICE_ENGINE = _NoticeEngine(loaders=[], builtins=[__name__], debug=False)


class _NoticeTemplate:
    """A compiled notice template, rendered from a dict (with or without HTML escaping)."""

    def __init__(self, source: str, *, escape: bool):
        if len(source) > MAX_LENGTH:
            raise TemplateSyntaxError(f"it is {len(source):,} characters long, more than {MAX_LENGTH:,}")
        for token in Lexer(source).tokenize():
            filters = _QUOTED.sub("", token.contents).count("|")
            if token.token_type in (TokenType.VAR, TokenType.BLOCK) and filters > MAX_FILTERS:
                raise TemplateSyntaxError(
                    f"line {token.lineno}: more than {MAX_FILTERS} filters in {token.contents!r}"
                )
        self.template = NOTICE_ENGINE.from_string(source)
        for loop in self.template.nodelist.get_nodes_by_type(ForNode):
            if loop.nodelist_loop.get_nodes_by_type(ForNode) or loop.nodelist_empty.get_nodes_by_type(
                ForNode
            ):
                # Each level multiplies the work: ten nested loops over a name are 10^15 steps.
                raise TemplateSyntaxError("a {% for %} loop may not contain another loop")
        self.escape = escape

    def render(self, context: dict) -> str:
        return self.template.render(Context(context, autoescape=self.escape))


PART_NAMES = {"subject": "The subject", "body": "The text", "html_body": "The HTML body"}


def _compile_part(field: str, source: str, *, escape: bool) -> _NoticeTemplate:
    """Compile one part of a notice template; raises TemplateInvalid naming the part."""
    try:
        return _NoticeTemplate(source, escape=escape)
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(
            f"{PART_NAMES[field]} does not render: {exc}. Notice templates may use only the tags "
            f"{', '.join(SAFE_TAGS)} and the filters {', '.join(SAFE_FILTERS)}.",
            field=field,
        ) from exc


def _sms_text(text: str) -> str:
    return gsm7.normalize(" ".join(text.split()))


def _email_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


class _Compiled:
    def __init__(self, *, channel: str, subject: str, body: str, html_body: str, template_id: int | None):
        self.channel = channel
        self.template_id = template_id
        self.subject = _compile_part("subject", subject, escape=False) if subject else None
        self.body = _compile_part("body", body, escape=False)
        self.html = _compile_part("html_body", html_body, escape=True) if html_body else None

    def render(self, context: dict) -> Rendered:
        body = self.body.render(context)
        if self.channel == Channel.SMS:
            text = _sms_text(body)
            return Rendered("", text, "", gsm7.segments(text), self.template_id)
        subject = " ".join(self.subject.render(context).split()) if self.subject else ""
        html = ""
        if self.html is not None:
            html = render_to_string(
                "notifications/email/layout.html",
                {**context, "subject": subject, "content": mark_safe(self.html.render(context))},
            )
        return Rendered(subject, _email_text(body), html, None, self.template_id)


class TemplateSet:
    """The notice templates, read in one query and compiled on first use. Falls back to the
    built-in default text (notifications/defaults.py) for a notice whose row is missing or does
    not compile with the restricted engine."""

    def __init__(self):
        self._rows = {(t.notice, t.channel): t for t in NoticeTemplate.objects.all()}
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def render(self, notice: str, channel: str, context: dict) -> Rendered:
        key = (notice, channel)
        if key not in self._compiled:
            row = self._rows.get(key)
            compiled = None
            if row is not None:
                source = {"subject": row.subject, "body": row.body, "html_body": row.html_body}
                try:
                    compiled = _Compiled(channel=channel, template_id=row.pk, **source)
                except TemplateInvalid as exc:
                    # A row saved before the restricted engine, or written past the admin: the
                    # member still gets the notice, in the default words.
                    logger.error(
                        "notice template #%s (%s, %s) refused, using the default: %s", row.pk, *key, exc
                    )
            if compiled is None:
                compiled = _Compiled(channel=channel, template_id=None, **defaults()[key])
            self._compiled[key] = compiled
        return self._compiled[key].render(context)


def template_check(
    *, notice: str, channel: str, subject: str, body: str, html_body: str, allow_multipart: bool
) -> Rendered:
    """Render a template being edited with the notice's sample values; raises TemplateInvalid
    when it does not render or when an SMS leaves one GSM-7 segment without allow_multipart."""
    compiled = _Compiled(channel=channel, subject=subject, body=body, html_body=html_body, template_id=None)
    try:
        rendered = compiled.render(sample_context(notice))
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(f"The template does not render: {exc}") from exc
    if channel == Channel.SMS:
        if not rendered.body:
            raise TemplateInvalid("The SMS text is empty.", field="body")
        if not allow_multipart:
            odd = gsm7.non_gsm7_characters(rendered.body)
            if odd:
                raise TemplateInvalid(
                    f"These characters are not in the SMS alphabet (GSM-7) and would cut a text to 70 "
                    f"characters: {' '.join(odd)}. Replace them, or allow more than one segment.",
                    field="body",
                )
            if rendered.segments > 1:
                raise TemplateInvalid(
                    f"With the sample values the text is {gsm7.septets(rendered.body)} characters, more "
                    f"than one SMS segment ({gsm7.SINGLE_GSM7}). Shorten it, or allow more than one segment.",
                    field="body",
                )
    elif not subject.strip():
        raise TemplateInvalid("An email needs a subject.", field="subject")
    return rendered
