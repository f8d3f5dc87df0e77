"""Domain errors raised by billing services; each API format renders them its own way."""


class BillingError(Exception):
    pass


class InsufficientBalance(BillingError):
    pass


class DuplicateEvent(BillingError):
    """The external event was already recorded; nothing changed."""
