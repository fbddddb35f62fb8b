"""Rendering notices from their templates.

Templates are loaded once per batch (`TemplateSet`, one query) and compiled once, so rendering
ten thousand low-balance notices costs no query per notice. SMS text is rendered without HTML
escaping, its whitespace collapsed and look-alike characters replaced by GSM-7 ones; email gets a
plain-text part and an HTML part (autoescaped, inside templates/notifications/email/layout.html).
"""

import datetime
import re
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.template import TemplateSyntaxError, engines
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from notifications import gsm7
from notifications.defaults import defaults
from notifications.exceptions import TemplateInvalid
from notifications.models import NoticeTemplate
from notifications.notices import COMMON_SAMPLE, SAMPLES, Channel


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    html_body: str
    segments: int | None
    template_id: int | None


def usd(value: Decimal | None) -> str:
    """$1,234.50 and -$5.00 (an ASCII minus: it is in GSM-7, the true minus sign is not)."""
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


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


def _compile(source: str, *, escape: bool):
    engine = engines["django"]
    if not escape:
        source = "{% autoescape off %}" + source + "{% endautoescape %}"
    return engine.from_string(source)


def _sms_text(text: str) -> str:
    return gsm7.normalize(" ".join(text.split()))


def _email_text(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


class _Compiled:
    def __init__(self, *, channel: str, subject: str, body: str, html_body: str, template_id: int | None):
        self.channel = channel
        self.template_id = template_id
        self.subject = _compile(subject, escape=False) if subject else None
        self.body = _compile(body, escape=False)
        self.html = _compile(html_body, escape=True) if html_body else None

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
    built-in default text (notifications/defaults.py) for a notice whose row is missing."""

    def __init__(self):
        self._rows = {(t.notice, t.channel): t for t in NoticeTemplate.objects.all()}
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def render(self, notice: str, channel: str, context: dict) -> Rendered:
        key = (notice, channel)
        if key not in self._compiled:
            row = self._rows.get(key)
            if row is not None:
                source = {"subject": row.subject, "body": row.body, "html_body": row.html_body}
            else:
                source = defaults()[key]
            self._compiled[key] = _Compiled(channel=channel, template_id=row.pk if row else None, **source)
        return self._compiled[key].render(context)


def template_check(
    *, notice: str, channel: str, subject: str, body: str, html_body: str, allow_multipart: bool
) -> Rendered:
    """Render a template being edited with the notice's sample values; raises TemplateInvalid
    when it does not render or when an SMS leaves one GSM-7 segment without allow_multipart."""
    try:
        compiled = _Compiled(
            channel=channel, subject=subject, body=body, html_body=html_body, template_id=None
        )
        rendered = compiled.render(sample_context(notice))
    except TemplateSyntaxError as exc:
        raise TemplateInvalid(f"The template does not render: {exc}") from exc
    if channel == Channel.SMS:
        if not rendered.body:
            raise TemplateInvalid("The SMS text is empty.")
        if not allow_multipart:
            odd = gsm7.non_gsm7_characters(rendered.body)
            if odd:
                raise TemplateInvalid(
                    f"These characters are not in the SMS alphabet (GSM-7) and would cut a text to 70 "
                    f"characters: {' '.join(odd)}. Replace them, or allow more than one segment."
                )
            if rendered.segments > 1:
                raise TemplateInvalid(
                    f"With the sample values the text is {gsm7.septets(rendered.body)} characters, more "
                    f"than one SMS segment ({gsm7.SINGLE_GSM7}). Shorten it, or allow more than one segment."
                )
    elif not subject.strip():
        raise TemplateInvalid("An email needs a subject.")
    return rendered
