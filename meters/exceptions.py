"""The meters app's domain errors. Messages are shown to staff: say what was wrong and what to do."""

from coop.exceptions import CoopError
from coop.lifecycle import IllegalTransition


class MetersError(CoopError):
    pass


class IllegalOrderTransition(MetersError, IllegalTransition):
    """A service-order status move that the order lifecycle does not allow."""


class HeadEndError(MetersError):
    """A head-end adapter could not carry out a service order."""


class HeadEndTransientError(HeadEndError):
    """The head-end may accept the order later (timeout, busy, meter not answering): retried with
    backoff."""


class HeadEndPermanentError(HeadEndError):
    """The head-end will never accept the order as it is (unknown meter, no remote switch): not
    retried; staff move it to the field list or cancel it."""


class ReadsImportError(MetersError):
    """A reads file cannot be imported at all (unreadable, not UTF-8, not well-formed XML, units
    other than Wh, more than one usage point...). Nothing was imported."""


class UnknownMeter(MetersError):
    """No meter has the serial number given."""
