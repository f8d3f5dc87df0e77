"""People, the organizations that are billed, and the API keys they call models with."""

from __future__ import annotations

from typing import Any, ClassVar

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.auth.password_validation import validate_password
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from accounts.exceptions import EmailTaken
from accounts.signals import organization_created
from sealed.fields import EncryptedTextField


class UserManager(BaseUserManager["User"]):
    """The one way users are created: accounts.services.user_create (the product's entry
    point) and Django's createsuperuser both end here, so every user gets its personal
    organization."""

    def create_user(
        self,
        email: str,
        password: str | None = None,
        *,
        name: str = "",
        is_admin: bool = False,
        email_verified: bool = False,
        validate: bool = False,
    ) -> User:
        """A user with a personal organization (owner) and its empty wallet. Atomic."""
        email = self.normalize_email(email.strip()).lower()
        if not email or "@" not in email:
            raise ValueError(gettext("a valid email address is required"))
        if self.filter(email__iexact=email).exists():
            raise EmailTaken(
                gettext("a user with email %(email)s already exists") % {"email": email}
            )
        with transaction.atomic():
            user = self.model(
                email=email,
                name=name,
                is_staff=is_admin,
                is_superuser=is_admin,
                email_verified=email_verified or is_admin,
            )
            if password:
                if validate:
                    validate_password(password, user)
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
            # allauth decides sign-in verification from its EmailAddress rows.
            EmailAddress.objects.create(
                user=user, email=email, primary=True, verified=user.email_verified
            )
            Organization.objects.create_personal(user=user)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        return self.create_user(email, password, is_admin=True)


class OrganizationManager(models.Manager["Organization"]):
    def create_personal(self, *, user: User) -> Organization:
        """The user's own billed organization (owner role); billing adds its wallet. Atomic."""
        with transaction.atomic():
            org = self.create(name=user.email, is_personal=True)
            Membership.objects.create(user=user, organization=org, role=Membership.Role.OWNER)
            organization_created.send(sender=Organization, organization=org)
        return org


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    email_verified = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # An IANA zone name ("Europe/Berlin") for the portal's times; blank: the browser's.
    time_zone = models.CharField(max_length=64, blank=True, default="")

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.email


class Organization(models.Model):
    """The billed party. Every user owns a personal one; teams share one."""

    objects: ClassVar[OrganizationManager] = OrganizationManager()

    name = models.CharField(max_length=150)
    is_personal = models.BooleanField(default=False)
    pricing_group = models.ForeignKey(
        "billing.PricingGroup", null=True, blank=True, on_delete=models.PROTECT
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    # Caps across all the organization's keys (empty: none); see ApiKey.
    requests_per_day = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent = models.PositiveIntegerField(null=True, blank=True)
    spend_cap_day = models.BigIntegerField(null=True, blank=True, help_text="micro-USD")
    spend_cap_week = models.BigIntegerField(null=True, blank=True, help_text="micro-USD")
    spend_cap_month = models.BigIntegerField(null=True, blank=True, help_text="micro-USD")
    # With a plan: what the plan does not cover, or a full window, is paid from the
    # balance; off, it is refused (429 until the window frees up).
    plan_fallback = models.BooleanField(default=True)
    # Members without a second factor are sent to set one up before using the dashboard.
    require_mfa = models.BooleanField(default=False)
    # Opt-in exception to "no content is stored": Responses answers are kept for
    # `previous_response_id`, encrypted with the calling key, for RESPONSES_STORE_SECONDS.
    store_responses = models.BooleanField(
        default=False,
        help_text="Keep Responses API conversations briefly so that clients can continue "
        "them with previous_response_id. Stored encrypted with the calling API key, which "
        "TokenHub does not keep: unreadable without it; deleted after a short time.",
    )
    # Invoice details: shown on receipts, statements and credit notes (billing/documents).
    legal_name = models.CharField(max_length=200, blank=True)
    billing_address = models.TextField(max_length=1000, blank=True)
    billing_country = models.CharField(max_length=2, blank=True, help_text="ISO 3166 code")
    tax_id = models.CharField(max_length=64, blank=True, help_text="VAT number, EIN, ...")
    # Set when staff approve a verification request, cleared when they revoke it
    # (accounts/verification); what it unlocks is the operator's VERIFICATION_* settings.
    # Not editable: only those audited steps change it.
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", pgettext_lazy("role", "Owner")
        ADMIN = "admin", pgettext_lazy("role", "Admin")
        MEMBER = "member", pgettext_lazy("role", "Member")
        BILLING = "billing", pgettext_lazy("role", "Billing")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "organization"], name="uniq_membership")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.organization_id}:{self.role}"


class ApiKey(models.Model):
    """A customer's secret. Only a SHA-256 hash is stored; the prefix stays readable."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        DISABLED = "disabled", _("Disabled")
        REVOKED = "revoked", _("Revoked")

    class LimitPeriod(models.TextChoices):
        TOTAL = "total", _("Total")
        MONTH = "month", _("Month")

    class Scope(models.TextChoices):
        RELAY = "relay", _("Relay")
        MANAGE = "manage", _("Manage")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, db_index=True)
    key_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(default=list, blank=True)
    allowed_ips = models.JSONField(default=list, blank=True)
    spend_limit = models.BigIntegerField(null=True, blank=True, help_text="micro-USD")
    spend_limit_period = models.CharField(
        max_length=8, choices=LimitPeriod.choices, default=LimitPeriod.TOTAL
    )
    spent = models.BigIntegerField(default=0, help_text="micro-USD, all time")
    # Spend in the current limit period (all time for TOTAL, this month for MONTH) and
    # credit held by in-flight requests; reserve checks period_spent + held + x <= limit.
    period_spent = models.BigIntegerField(default=0)
    period_start = models.DateField(null=True, blank=True)
    held = models.BigIntegerField(default=0)
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    # Caps (empty: none): requests per calendar day (UTC), requests in flight at once,
    # spend per calendar day, week and month. Enforced with the hold, exactly, in every
    # process (billing/caps.py).
    requests_per_day = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent = models.PositiveIntegerField(null=True, blank=True)
    spend_cap_day = models.BigIntegerField(null=True, blank=True, help_text="micro-USD")
    spend_cap_week = models.BigIntegerField(null=True, blank=True, help_text="micro-USD")
    spend_cap_month = models.BigIntegerField(null=True, blank=True, help_text="micro-USD")
    # Answers carry what the call cost (X-TokenHub-Cost, usage.cost).
    show_cost = models.BooleanField(default=True)
    pricing_group = models.ForeignKey(
        "billing.PricingGroup", null=True, blank=True, on_delete=models.PROTECT
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # A short-lived key the playground page hands to the browser; hidden from key lists.
    is_playground = models.BooleanField(default=False)
    # Deleting a key revokes and hides it; the row stays, because holds in flight, the
    # ledger and the request logs refer to it (a hard delete raced with new holds).
    deleted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})" if self.name else f"{self.prefix}…"

    def is_usable(self, now: Any = None) -> bool:
        now = now or timezone.now()
        if self.status != self.Status.ACTIVE:
            return False
        return self.expires_at is None or self.expires_at > now


class Invitation(models.Model):
    """An emailed, expiring, single-use invitation into an organization.

    Only a SHA-256 of the token is stored; the link in the email carries the token itself.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField()
    role = models.CharField(
        max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER
    )
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["organization", "email"])]

    def __str__(self) -> str:
        return f"{self.email} → {self.organization_id} ({self.role})"

    def is_pending(self, now: Any = None) -> bool:
        now = now or timezone.now()
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now


# --- Legal documents and privacy rights -----------------------------------------------


class LegalDocument(models.Model):
    """One published version of the Terms of Service or the Privacy Policy (Markdown)."""

    class Kind(models.TextChoices):
        TERMS = "terms", _("Terms of Service")
        PRIVACY = "privacy", _("Privacy Policy")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    version = models.CharField(max_length=32, help_text="e.g. 2026-12 or 3")
    title_en = models.CharField(max_length=200)
    title_zh_hans = models.CharField(max_length=200, blank=True)
    body_en = models.TextField(help_text="Markdown; raw HTML is shown as text")
    body_zh_hans = models.TextField(blank=True, help_text="Markdown; empty falls back to English")
    effective_at = models.DateTimeField(
        help_text="Announce material updates at least LEGAL_NOTICE_DAYS ahead"
    )
    material = models.BooleanField(
        default=True, help_text="Users must accept it again at their next sign-in"
    )
    announced_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["kind", "version"], name="uniq_legal_version")
        ]
        ordering: ClassVar = ["kind", "-effective_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.version}"


class LegalAcceptance(models.Model):
    """A person accepted one version of a legal document (kept after account deletion)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    document = models.ForeignKey(LegalDocument, on_delete=models.PROTECT)
    accepted_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints: ClassVar = [
            models.UniqueConstraint(fields=["user", "document"], name="uniq_legal_acceptance")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} accepted {self.document_id}"


class DataExport(models.Model):
    """A "Download my data" archive, built by a Celery task and offered until expires_at."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    archive = models.TextField(blank=True, help_text="JSON")
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"export {self.pk} ({self.state})"


class Announcement(models.Model):
    """News from the operator: maintenance, new models, price changes.

    Shown as a dismissible banner while current and listed on /announcements/; an
    important one can be emailed to every verified user once (sent in batches by Celery).
    """

    class Level(models.TextChoices):
        INFO = "info", "Information"
        MAINTENANCE = "maintenance", "Maintenance"
        WARNING = "warning", "Warning"

    title_en = models.CharField(max_length=200)
    title_zh_hans = models.CharField(max_length=200, blank=True)
    body_en = models.TextField(help_text="Markdown; raw HTML is shown as text")
    body_zh_hans = models.TextField(blank=True, help_text="Markdown; empty falls back to English")
    level = models.CharField(max_length=16, choices=Level.choices, default=Level.INFO)
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField(null=True, blank=True, help_text="Empty: shown until removed")
    emailed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes: ClassVar = [models.Index(fields=["-starts_at"])]

    def __str__(self) -> str:
        return self.title_en


# --- Support work orders (accounts/support) --------------------------------------------


class WorkOrder(models.Model):
    """A customer's support request and its conversation with staff.

    The subject and messages are content the customer chose to send: stored, exported with
    their data and removed by account deletion (accounts/support/services.py).
    """

    class Category(models.TextChoices):
        BILLING = "billing", _("Billing")
        TECHNICAL = "technical", _("Technical")
        ACCOUNT = "account", _("Account")
        ABUSE = "abuse", _("Abuse report")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        WAITING_ON_CUSTOMER = "waiting_customer", _("Waiting on customer")
        WAITING_ON_STAFF = "waiting_staff", _("Waiting on staff")
        RESOLVED = "resolved", _("Resolved")
        CLOSED = "closed", _("Closed")

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="work_orders"
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    category = models.CharField(max_length=16, choices=Category.choices)
    subject = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        limit_choices_to={"is_staff": True},
    )
    # Request ids of the organization's own logs.RequestLog rows, checked when given.
    request_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Since when the order waits for staff (open or waiting on staff): the queue's order.
    waiting_since = models.DateTimeField(null=True, blank=True)
    first_response_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes: ClassVar = [
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["status", "waiting_since"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"


class WorkOrderMessage(models.Model):
    """One message of a work order's thread; an internal note is seen by staff only."""

    work_order = models.ForeignKey(WorkOrder, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_staff = models.BooleanField(default=False)
    internal = models.BooleanField(default=False)
    body = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering: ClassVar = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"message {self.pk} of work order {self.work_order_id}"


class WorkOrderAttachment(models.Model):
    """A file sent with a message: PNG, JPEG, PDF or plain text by its content, at most
    5 MB, its bytes base64-encoded inside a Fernet token (sealed.fields)."""

    message = models.ForeignKey(
        WorkOrderMessage, on_delete=models.CASCADE, related_name="attachments"
    )
    name = models.CharField(max_length=120)
    content_type = models.CharField(max_length=32)
    size = models.PositiveIntegerField()
    data = EncryptedTextField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name


# --- Verified organizations (accounts/verification) -------------------------------------


class VerificationRequest(models.Model):
    """An organization's legal details and documents, reviewed by staff.

    At most one open request (submitted or waiting for more information) per organization.
    Its documents are deleted VERIFICATION_DOCUMENT_RETENTION_DAYS after it closed
    (accounts/verification/services.py); the details and the decision stay.
    """

    class State(models.TextChoices):
        SUBMITTED = "submitted", _("Under review")
        MORE_INFO = "more_info", _("More information requested")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        WITHDRAWN = "withdrawn", _("Withdrawn")

    OPEN_STATES: ClassVar = (State.SUBMITTED, State.MORE_INFO)

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="verification_requests"
    )
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.SUBMITTED)
    legal_name = models.CharField(max_length=200)
    registration_number = models.CharField(max_length=64)
    country = models.CharField(max_length=2, help_text="ISO 3166 code")
    address = models.TextField(max_length=1000)
    contact_name = models.CharField(max_length=150)
    contact_email = models.EmailField()
    # The customer's answer to a request for more information.
    customer_note = models.TextField(max_length=4000, blank=True)
    # Staff's reason for a rejection, or what more they need; shown to the customer.
    staff_message = models.TextField(max_length=4000, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(default=timezone.now)
    # When it was approved, rejected or withdrawn: the retention period starts here.
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["-created_at", "-pk"]
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(state__in=["submitted", "more_info"]),
                name="uniq_open_verification_request",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.legal_name}"

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES


class VerificationDocument(models.Model):
    """A document of a verification request: PDF, PNG or JPEG by its content, at most
    10 MB, its bytes base64-encoded inside a Fernet token. When purged, `data` is emptied
    and the name, size and SHA-256 stay as the record of what was seen."""

    request = models.ForeignKey(
        VerificationRequest, on_delete=models.CASCADE, related_name="documents"
    )
    name = models.CharField(max_length=120)
    content_type = models.CharField(max_length=32)
    size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    data = EncryptedTextField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering: ClassVar = ["created_at", "pk"]

    def __str__(self) -> str:
        return self.name


class AuditEvent(models.Model):
    """A security or administrative action: who, what, where from, when. Append-only.

    `user` is the person the event is about (signed in, changed their MFA, was added to an
    organization); `actor` is who did it when that is someone else (an owner changing a
    role, an admin adjusting a balance). `meta` holds small identifiers, never secrets,
    prompt content or another person's email.
    """

    class Kind(models.TextChoices):
        SIGN_IN = "sign_in", _("Signed in")
        SIGN_IN_FAILED = "sign_in_failed", _("Sign-in failed")
        SIGN_IN_NEW_IP = "sign_in_new_ip", _("Signed in from a new address")
        SIGN_OUT = "sign_out", _("Signed out")
        SIGN_UP = "sign_up", _("Signed up")
        EMAIL_VERIFIED = "email_verified", _("Email verified")
        PASSWORD_CHANGED = "password_changed", _("Password changed")
        PASSWORD_RESET = "password_reset", _("Password reset")
        MFA_ENABLED = "mfa_enabled", _("Two-factor method added")
        MFA_DISABLED = "mfa_disabled", _("Two-factor method removed")
        RECOVERY_CODES_GENERATED = "recovery_codes_generated", _("Recovery codes generated")
        SOCIAL_LINKED = "social_linked", _("Sign-in provider linked")
        SOCIAL_UNLINKED = "social_unlinked", _("Sign-in provider unlinked")
        SESSIONS_ENDED = "sessions_ended", _("Other sessions signed out")
        LEGAL_ACCEPTED = "legal_accepted", _("Legal documents accepted")
        DATA_EXPORTED = "data_exported", _("Data export requested")
        ACCOUNT_DELETED = "account_deleted", _("Account deleted")
        KEY_CREATED = "key_created", _("API key created")
        KEY_ROTATED = "key_rotated", _("API key rotated")
        KEY_REVOKED = "key_revoked", _("API key revoked")
        KEY_CHANGED = "key_changed", _("API key settings changed")
        MEMBER_ADDED = "member_added", _("Member added")
        ROLE_CHANGED = "role_changed", _("Role changed")
        MEMBER_REMOVED = "member_removed", _("Member removed")
        MFA_POLICY_CHANGED = "mfa_policy_changed", _("Organization MFA policy changed")
        ORG_SETTINGS_CHANGED = "org_settings_changed", _("Organization settings changed")
        REQUEST_LOGS_DELETED = "request_logs_deleted", _("Request logs deleted")
        PAYMENT_SETTINGS_CHANGED = "payment_settings_changed", _("Payment settings changed")
        BALANCE_ADJUSTED = "balance_adjusted", _("Balance adjusted")
        SUBSCRIPTION_CHANGED = "subscription_changed", _("Subscription changed")
        IMPERSONATION = "impersonation", _("Admin impersonation")

    created_at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=40, choices=Kind.choices)
    user = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    organization = models.ForeignKey(
        "accounts.Organization",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    meta = models.JSONField(default=dict, blank=True)

    class Meta:
        # Born in logs, moved here with its table (logs 0013, accounts 0015): the security
        # trail is about people and organizations, and every app below the pages records it.
        db_table = "logs_auditevent"
        indexes: ClassVar = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["organization", "-created_at"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.created_at:%Y-%m-%d %H:%M:%S}"
