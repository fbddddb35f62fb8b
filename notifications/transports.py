"""How a message leaves the building: SMS through Twilio (or the console, or a file, when Twilio
is not configured), email through Django's email backend (SMTP, or the console/file backends).

A transport either returns (transport, provider id) or raises a `TransientDeliveryError` (try
again later) or a `PermanentDeliveryError` (trying again cannot help). The classification of
Twilio's errors is here, in one table, with its sources.
"""

import datetime
import json
import logging
import smtplib
import sys
from dataclasses import dataclass
from email.utils import make_msgid
from pathlib import Path

import requests
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.urls import reverse
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from notifications.exceptions import PermanentDeliveryError, TransientDeliveryError

logger = logging.getLogger(__name__)

# Twilio REST error codes (https://www.twilio.com/docs/api/errors) that mean the member's number
# itself will never take our texts: the clerk must correct it (or the member must text START).
PHONE_PROBLEM_CODES = {
    21211: "Invalid phone number",
    21214: "Number cannot be reached (not a valid mobile number)",
    21610: "Member unsubscribed (texted STOP to the carrier)",
    21612: "Number cannot be reached from the cooperative's number",
    21614: "Not a mobile number (landline)",
}
# Permanent for the message but not the number's fault: region not enabled (21408), message
# blocked as spam (30007 at delivery), too long (21617), and any other 4xx the API answers.
# Transient: the API's 429 / 20429 (too many requests), 5xx, 20003 (authentication: somebody may
# fix the credentials before the retries run out), and network errors.
TRANSIENT_CODES = {20429, 20003, 20005, 30001}
# Delivery error codes (status callbacks) that say the number is unusable.
DELIVERY_PHONE_PROBLEM_CODES = {
    30005: "Unknown destination (number does not exist)",
    30006: "Landline or unreachable carrier",
}
UNSUBSCRIBED = 21610


@dataclass(frozen=True)
class Outgoing:
    """What a transport needs: plain values, no model instances."""

    id: int
    channel: str
    recipient: str
    subject: str
    body: str
    html_body: str


# --- SMS -------------------------------------------------------------------------------------------


def twilio_configured() -> bool:
    return bool(
        settings.TWILIO_ACCOUNT_SID
        and settings.TWILIO_AUTH_TOKEN
        and (settings.TWILIO_MESSAGING_SERVICE_SID or settings.TWILIO_FROM_NUMBER)
    )


def status_callback_url(message_id: int) -> str | None:
    """Where Twilio reports delivery of this message, or None without a public base URL. The
    message id rides along so a callback finds its row even if the worker died after Twilio
    accepted the message but before it saved the Twilio SID."""
    base = settings.TWILIO_WEBHOOK_BASE_URL.rstrip("/")
    if not base:
        return None
    return f"{base}{reverse('notifications:twilio_status')}?m={message_id}"


class TwilioSms:
    """Twilio's official client. `http_client` is for tests (a twilio.http.HttpClient that answers
    without the network); by default Twilio's own, with a timeout."""

    transport = "twilio"

    def __init__(self, *, http_client=None):
        self.down = ""  # set when Twilio could not be reached: the rest of the batch waits
        self.client = Client(
            settings.TWILIO_ACCOUNT_SID,
            settings.TWILIO_AUTH_TOKEN,
            http_client=http_client or TwilioHttpClient(timeout=settings.TWILIO_TIMEOUT),
        )

    def send(self, message: Outgoing) -> str:
        sender = (
            {"messaging_service_sid": settings.TWILIO_MESSAGING_SERVICE_SID}
            if settings.TWILIO_MESSAGING_SERVICE_SID
            else {"from_": settings.TWILIO_FROM_NUMBER}
        )
        if self.down:
            raise TransientDeliveryError(self.down, code="network")
        callback = status_callback_url(message.id)
        extra = {"status_callback": callback} if callback else {}
        try:
            sent = self.client.messages.create(to=message.recipient, body=message.body, **sender, **extra)
        except (TwilioRestException, TwilioServiceException) as exc:
            raise classify_twilio_error(exc) from exc
        except (TwilioException, requests.RequestException, OSError) as exc:
            # Each try waits for the timeout: the rest of the batch is retried later instead.
            self.down = f"Twilio could not be reached: {exc}"[:300]
            raise TransientDeliveryError(self.down, code="network") from exc
        return sent.sid


def classify_twilio_error(exc) -> Exception:
    code = getattr(exc, "code", None)
    status = getattr(exc, "status", None) or 0
    text = getattr(exc, "msg", None) or getattr(exc, "detail", None) or getattr(exc, "title", "") or ""
    label = f"Twilio {code or status}: {text}".strip()[:300]
    code_text = str(code or status)
    if code in PHONE_PROBLEM_CODES:
        return PermanentDeliveryError(
            f"{PHONE_PROBLEM_CODES[code]} ({label})"[:300], code=code_text, phone_problem=True
        )
    if code in TRANSIENT_CODES or status == 429 or status >= 500:
        return TransientDeliveryError(label, code=code_text)
    return PermanentDeliveryError(label, code=code_text)


class ConsoleSms:
    """Development and the demo: the text is printed, not sent."""

    transport = "console"

    def __init__(self, stream=None):
        self.stream = stream

    def send(self, message: Outgoing) -> str:
        stream = self.stream or sys.stdout
        stream.write(f"--- SMS #{message.id} to {message.recipient} ---\n{message.body}\n")
        stream.flush()
        return f"console-{message.id}"


class FileSms:
    """Development: each text is appended as one JSON line to a file per day in COOP_SMS_FILE_PATH."""

    transport = "file"

    def send(self, message: Outgoing) -> str:
        folder = Path(settings.COOP_SMS_FILE_PATH)
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        line = {"id": message.id, "to": message.recipient, "body": message.body, "at": now.isoformat()}
        with open(folder / f"sms-{now:%Y%m%d}.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
        return f"file-{message.id}"


def sms_transport(*, http_client=None):
    """The SMS transport the settings ask for: COOP_SMS_BACKEND twilio, console or file; empty
    means Twilio when its settings are complete, else the console."""
    choice = (settings.COOP_SMS_BACKEND or ("twilio" if twilio_configured() else "console")).lower()
    if choice == "twilio":
        return TwilioSms(http_client=http_client)
    if choice == "file":
        return FileSms()
    return ConsoleSms()


# --- Email -----------------------------------------------------------------------------------------

EMAIL_TRANSPORTS = {
    "django.core.mail.backends.smtp.EmailBackend": "smtp",
    "django.core.mail.backends.console.EmailBackend": "console",
    "django.core.mail.backends.filebased.EmailBackend": "file",
    "django.core.mail.backends.locmem.EmailBackend": "memory",
}


def email_transport_name() -> str:
    return EMAIL_TRANSPORTS.get(settings.EMAIL_BACKEND, "other")


class Email:
    def __init__(self):
        self.transport = email_transport_name()
        self.connection = get_connection(fail_silently=False)
        self.opened = False  # one SMTP session for the whole batch, not one per email
        self.down = ""  # set when the server could not be reached: the rest of the batch waits

    def send(self, message: Outgoing) -> str:
        domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"
        message_id = make_msgid(idstring=f"m{message.id}", domain=domain)
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.recipient],
            connection=self.connection,
            headers={"X-Coop-Message-Id": str(message.id), "Message-ID": message_id},
        )
        if message.html_body:
            email.attach_alternative(message.html_body, "text/html")
        if self.down:
            raise TransientDeliveryError(self.down, code="smtp")
        try:
            if not self.opened:
                self.connection.open()
                self.opened = True
            email.send()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [str(code) for code, _ in exc.recipients.values()]
            raise PermanentDeliveryError(
                f"The mail server refused the address: {exc.recipients}"[:300], code=f"smtp-{codes[0]}"
            ) from exc
        except smtplib.SMTPResponseException as exc:
            kind = PermanentDeliveryError if 500 <= exc.smtp_code < 600 else TransientDeliveryError
            raise kind(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:300], code=f"smtp-{exc.smtp_code}"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.down = f"The mail server could not be reached: {exc}"[:300]
            raise TransientDeliveryError(self.down, code="smtp") from exc
        return message_id

    def close(self):
        try:
            self.connection.close()
        except Exception:  # closing a dead SMTP connection is not worth failing the batch for
            logger.debug("closing the email connection failed", exc_info=True)
