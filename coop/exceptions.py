class CoopError(Exception):
    """Base class for the cooperative's domain errors; the message is shown to staff."""


class PolicyNotConfigured(CoopError):
    pass


class PolicyHistoryLocked(CoopError):
    """A policy version already in force may not be changed: history is never rewritten."""
