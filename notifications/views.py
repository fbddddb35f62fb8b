"""Twilio's webhooks: delivery status callbacks and incoming texts.

Both check X-Twilio-Signature with twilio's RequestValidator before anything else: a missing or
wrong signature (or no TWILIO_AUTH_TOKEN to check it with) is answered 403 and nothing is written.
The signature covers the URL Twilio requested; behind a TLS-terminating proxy that is the public
https URL, so it is rebuilt from TWILIO_WEBHOOK_BASE_URL when that is set (else from the request,
which needs DJANGO_BEHIND_TLS_PROXY and the proxy's Host header).
"""

from django.conf import settings
from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from twilio.request_validator import RequestValidator

from notifications import webhooks

SIGNATURE_HEADER = "X-Twilio-Signature"


def public_url(request) -> str:
    base = settings.TWILIO_WEBHOOK_BASE_URL.rstrip("/")
    if base:
        return base + request.get_full_path()
    return request.build_absolute_uri()


def signature_valid(request) -> bool:
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature or not settings.TWILIO_AUTH_TOKEN:
        return False
    return RequestValidator(settings.TWILIO_AUTH_TOKEN).validate(public_url(request), request.POST, signature)


@csrf_exempt
@require_POST
def twilio_status(request):
    if not signature_valid(request):
        return HttpResponseForbidden("Invalid Twilio signature.")
    webhooks.sms_status_record(params=request.POST.dict(), message_hint=request.GET.get("m"))
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_inbound(request):
    if not signature_valid(request):
        return HttpResponseForbidden("Invalid Twilio signature.")
    twiml = webhooks.sms_inbound_handle(params=request.POST.dict())
    return HttpResponse(twiml, content_type="application/xml")
