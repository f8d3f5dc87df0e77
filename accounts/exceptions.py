"""Domain errors raised by account services."""


class AccountsError(Exception):
    pass


class EmailTaken(AccountsError):
    pass


class InvalidKeySettings(AccountsError):
    pass


class RoleNotAllowed(AccountsError):
    """The acting member's role may not make this change (e.g. an admin touching an owner)."""


class MembershipRuleBroken(AccountsError):
    """The change would break an organization rule (last owner, personal organization...)."""


class InvitationInvalid(AccountsError):
    """Unknown, expired, already used or revoked invitation, or addressed to someone else."""
