from coop.exceptions import CoopError
from coop.lifecycle import IllegalTransition


class AccountsError(CoopError):
    pass


class IllegalStatusTransition(AccountsError, IllegalTransition):
    """An account status move that the lifecycle does not allow."""


class BulkStatusChangeRefused(AccountsError):
    """Some of the accounts of one status change could not move: none was moved. `errors` says
    why for each."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors
