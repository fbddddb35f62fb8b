from coop.exceptions import CoopError
from coop.lifecycle import IllegalTransition


class AccountsError(CoopError):
    pass


class IllegalStatusTransition(AccountsError, IllegalTransition):
    """An account status move that the lifecycle does not allow."""
