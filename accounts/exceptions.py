"""Domain errors raised by account services."""


class AccountsError(Exception):
    pass


class EmailTaken(AccountsError):
    pass


class InvalidKeySettings(AccountsError):
    pass


class AccountDeletionBlocked(AccountsError):
    pass
