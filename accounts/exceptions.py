from coop.exceptions import CoopError


class AccountsError(CoopError):
    pass


class IllegalStatusTransition(AccountsError):
    """An account status move that the lifecycle does not allow."""
