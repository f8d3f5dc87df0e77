"""Domain errors raised by account services."""

from django.utils.translation import gettext as _


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


class AccountDeletionBlocked(AccountsError):
    """The person is the only owner of a team that has other members."""

    def __init__(self, organization_name: str) -> None:
        super().__init__(
            _("you are the only owner of %(name)s: make someone else an owner first")
            % {"name": organization_name}
        )
        self.organization_name = organization_name


class InvalidOrganizationSettings(AccountsError):
    """An organization setting out of range (a cap that is not positive, too large...)."""
