class CoopError(Exception):
    """Base class for the cooperative's domain errors; the message is shown to staff."""


class PolicyNotConfigured(CoopError):
    pass


class PolicyHistoryLocked(CoopError):
    """A policy version already in force may not be changed: history is never rewritten."""


class ScheduleChangeRefused(CoopError):
    """A change to a background schedule that is not allowed (not one of the cooperative's own
    schedules, already in that state, no reason given, or a function that is not a task)."""
