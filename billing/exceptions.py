"""Domain errors raised by billing services; each API format renders them its own way."""


class BillingError(Exception):
    pass


class InsufficientBalance(BillingError):
    pass


class DuplicateEvent(BillingError):
    """The external event was already recorded; nothing changed."""


class InvalidTopUp(BillingError):
    """A top-up request outside the configured bounds or otherwise malformed."""


class PaymentMismatch(BillingError):
    """A provider reported a payment whose amount or currency differs from the top-up's."""


class PaymentNotReady(BillingError):
    """An event refers to a payment not known (or not credited) yet; retry later."""


class RedemptionError(BillingError):
    """A code that cannot be redeemed; the message is shown to the customer."""

    status = 400


class RedemptionRateLimited(RedemptionError):
    status = 429


class CapReached(InsufficientBalance):
    """A cap or a plan window cannot take the request; `index` is its place in the caps
    the hold was checked against, `window` whether it is one of the plan's windows."""

    def __init__(self, index: int, *, window: bool) -> None:
        super().__init__("cap reached")
        self.index = index
        self.window = window
