"""Why a work-order action was refused; the message is shown to the person who tried."""

from accounts.exceptions import AccountsError


class WorkOrderRefused(AccountsError):
    """Not allowed in the order's current state (reply to a closed order, late reopen...)."""


class AttachmentRefused(AccountsError):
    """A file of a type, size or count that work orders do not take."""
