"""Notice templates are written by managers in the admin: they are compiled by a restricted
engine, so template code cannot load libraries, read files, dump the context or reach settings."""

import logging

import pytest
from django.conf import settings
from django.urls import reverse

from notifications.exceptions import TemplateInvalid
from notifications.models import NoticeTemplate
from notifications.notices import Channel, Notice
from notifications.rendering import TemplateSet, sample_context, template_check

pytestmark = pytest.mark.django_db

UNSAFE = [
    "{% debug %}",  # prints the whole context and every loaded module
    "{% load static %}{% get_static_prefix %}",
    "{% load log %}{% get_admin_log 10 as log %}{{ log }}",
    "{% include 'admin/base.html' %}",
    "{% extends 'admin/base.html' %}",
    "{% url 'admin:index' %}",
    "{% csrf_token %}",
    "{% autoescape off %}{{ coop }}{% endautoescape %}",
    "{{ coop|ljust:'999999999' }}",  # a memory bomb
    "{{ coop|stringformat:'999999999s' }}",
    "{{ coop|safe }}",
    "{{ coop.__class__.__mro__ }}",
    # Output that grows without bound: nested loops, and names rebound to longer values.
    "{% for a in coop %}{% for b in coop %}{% for c in coop %}{{ c }}{% endfor %}{% endfor %}{% endfor %}",
    "{% for a in coop %}{% empty %}{% for b in coop %}{% endfor %}{% endfor %}",
    "{% with a=coop|add:coop %}{% with b=a|add:a %}{{ b }}{% endwith %}{% endwith %}",
    "{% firstof coop|join:coop as a %}{% firstof a|join:a as b %}{{ b }}",
    "{% cycle coop coop as a %}",
    "{{ coop|linebreaks|linebreaks|linebreaks|linebreaks|linebreaks|linebreaks }}",  # 4x a step
    "{% if coop|linebreaks|linebreaks|linebreaks|linebreaks|linebreaks %}{% endif %}",
    "{{ coop|join:coop }}",
    "{{ coop }}" * 1000,
]


@pytest.fixture
def client(client, manager):
    """Signed in as a billing manager."""
    client.force_login(manager)
    return client


def edit_url(notice: str, channel: str) -> str:
    template = NoticeTemplate.objects.get(notice=notice, channel=channel)
    return reverse("admin:notifications_noticetemplate_change", args=[template.pk])


@pytest.mark.parametrize("payload", UNSAFE)
def test_unsafe_template_code_in_an_sms_is_refused_on_the_text_field(client, manager, payload):
    url = edit_url(Notice.LOW_BALANCE, Channel.SMS)
    response = client.post(url, {"subject": "", "body": "{{ coop }}: " + payload, "html_body": ""})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "body" in errors and "does not render" in errors["body"][0], errors
    assert "may use only the tags" in errors["body"][0]
    assert payload not in NoticeTemplate.objects.get(notice=Notice.LOW_BALANCE, channel=Channel.SMS).body


@pytest.mark.parametrize("field", ["subject", "body", "html_body"])
def test_unsafe_template_code_in_any_part_of_an_email_is_refused_on_that_field(client, manager, field):
    url = edit_url(Notice.LOW_BALANCE, Channel.EMAIL)
    data = {
        "subject": "Low balance",
        "body": "Your balance is {{ balance }}",
        "html_body": "<p>{{ balance }}</p>",
    }
    data[field] += "{% debug %}"
    response = client.post(url, data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == [field] and "'debug'" in errors[field][0]


def test_a_name_outside_the_notice_renders_as_nothing(settings):
    settings.SECRET_KEY = "the-secret-key-value"
    rendered = template_check(
        notice=Notice.LOW_BALANCE,
        channel=Channel.SMS,
        subject="",
        body="{{ coop }} {{ settings.SECRET_KEY }}{{ request.user }}{{ view.request }}{{ perms }}",
        html_body="",
        allow_multipart=True,
    )
    assert rendered.body == settings.COOP_SMS_NAME
    assert "the-secret-key-value" not in rendered.body


def plain(value) -> bool:
    if isinstance(value, list):
        return all(plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    return isinstance(value, str | int | type(None))


def test_the_sample_values_a_template_is_checked_with_are_plain_values():
    # What a template can reach is only what the context holds: strings, numbers, lists, dicts.
    for notice in Notice:
        assert plain(sample_context(notice)), notice


def test_the_tags_and_filters_the_default_texts_use_still_work():
    rendered = template_check(
        notice=Notice.LOW_BALANCE,
        channel=Channel.EMAIL,
        subject="{{ first_name|upper }} {% if days %}{{ days }} day{{ days|pluralize }}{% endif %}",
        body="{% for x in 'ab' %}{{ x }}{% empty %}none{% endfor %} {{ missing|default:'n/a' }}",
        html_body="<p>{{ first_name }}<script></p>",
        allow_multipart=False,
    )
    assert rendered.subject == "KAREN 3 days"
    assert rendered.body == "ab n/a"


def test_html_parts_escape_values_and_texts_do_not():
    context = {**sample_context(Notice.LOW_BALANCE), "first_name": "<b>Karen</b>"}
    NoticeTemplate.objects.filter(notice=Notice.LOW_BALANCE, channel=Channel.EMAIL).update(
        body="Dear {{ first_name }}", html_body="<p>{{ first_name }}</p>"
    )
    rendered = TemplateSet().render(Notice.LOW_BALANCE, Channel.EMAIL, context)
    assert rendered.body == "Dear <b>Karen</b>"
    assert "&lt;b&gt;Karen&lt;/b&gt;" in rendered.html_body


def test_a_stored_template_with_unsafe_code_is_never_run_the_default_text_goes_out(caplog):
    # A row written past the admin (or before the restricted engine): the notice still goes out.
    NoticeTemplate.objects.filter(notice=Notice.LOW_BALANCE, channel=Channel.SMS).update(body="{% debug %}")
    with caplog.at_level(logging.ERROR, logger="notifications.rendering"):
        rendered = TemplateSet().render(Notice.LOW_BALANCE, Channel.SMS, sample_context(Notice.LOW_BALANCE))
    assert rendered.template_id is None
    assert rendered.body.startswith(settings.COOP_SMS_NAME) and "balance" in rendered.body
    assert "refused, using the default" in caplog.text


def test_the_service_refuses_unsafe_code_too():
    with pytest.raises(TemplateInvalid, match="does not render") as refused:
        template_check(
            notice=Notice.LOW_BALANCE,
            channel=Channel.SMS,
            subject="",
            body="{% include 'admin/base.html' %}",
            html_body="",
            allow_multipart=True,
        )
    assert refused.value.field == "body"
