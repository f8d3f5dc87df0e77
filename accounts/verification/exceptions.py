"""Why a verification step was refused; the message is shown to the person who tried."""

from accounts.exceptions import AccountsError


class VerificationRefused(AccountsError):
    """Not allowed in the request's or organization's state, or a document not taken."""
