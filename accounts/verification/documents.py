"""What a verification document may be, decided by its bytes: a PDF, PNG or JPEG (the
signatures of the work orders' content check, accounts/support/attachments.py), at most
10 MB, one to five per request."""

from __future__ import annotations

import hashlib

from django.utils.translation import gettext as _

from accounts.support.attachments import CheckedFile, safe_name, sniff
from accounts.verification.exceptions import VerificationRefused

MAX_FILES = 5
MAX_BYTES = 10 * 1024 * 1024
ACCEPTED = frozenset({"application/pdf", "image/png", "image/jpeg"})


def too_large(name: str) -> VerificationRefused:
    return VerificationRefused(
        _("%(name)s is larger than %(mb)d MB.")
        % {"name": safe_name(name, ""), "mb": MAX_BYTES // (1024 * 1024)}
    )


def document_check(*, name: str, data: bytes) -> CheckedFile:
    """The checked document (its name ending in its real type's extension), or
    VerificationRefused naming what is wrong."""
    if not data:
        raise VerificationRefused(_("%(name)s is empty.") % {"name": safe_name(name, "")})
    if len(data) > MAX_BYTES:
        raise too_large(name)
    kind = sniff(data)
    # sniff also accepts plain text, which is not a document here.
    if kind is None or kind[0] not in ACCEPTED:
        raise VerificationRefused(
            _("%(name)s is not a PDF, PNG or JPEG file.") % {"name": safe_name(name, "")}
        )
    content_type, extension = kind
    return CheckedFile(name=safe_name(name, extension), content_type=content_type, data=data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
