"""Domain errors raised by account services."""


class AccountsError(Exception):
    pass


class EmailTaken(AccountsError):
    pass


class InvalidKeySettings(AccountsError):
    pass


class AccountDeletionBlocked(AccountsError):
    """The person is the only owner of a team that has other members."""

    def __init__(self, organization_name: str) -> None:
        super().__init__(
            f"you are the only owner of {organization_name}: make someone else an owner first"
        )
        self.organization_name = organization_name
