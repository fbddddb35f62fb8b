from coop.exceptions import CoopError
from coop.lifecycle import IllegalTransition


class NotificationsError(CoopError):
    pass


class IllegalMessageTransition(NotificationsError, IllegalTransition):
    """A message status move that the delivery lifecycle does not allow."""


class TemplateInvalid(NotificationsError):
    """A notice template that does not render, or an SMS that does not fit where it must.
    `field`: the template's part at fault ("subject", "body", "html_body"), when one is."""

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotResendable(NotificationsError):
    """Only failed, undelivered or unsent messages can be sent again."""


# --- Delivery outcomes (raised by the transports in notifications/transports.py) ---------------


class DeliveryError(NotificationsError):
    def __init__(self, message: str, *, code: str = ""):
        super().__init__(message)
        self.code = code


class TransientDeliveryError(DeliveryError):
    """Worth trying again later: a timeout, the provider's 5xx or rate limit, an SMTP hiccup."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help: an invalid or unsubscribed number, a refused address.
    `phone_problem` says the member's number itself is at fault (the clerk must correct it)."""

    def __init__(self, message: str, *, code: str = "", phone_problem: bool = False):
        super().__init__(message, code=code)
        self.phone_problem = phone_problem
