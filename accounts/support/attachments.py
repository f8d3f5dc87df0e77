"""What a work-order attachment may be, decided by its bytes, never by its name.

PNG, JPEG and PDF are recognised by their signatures; plain text is UTF-8 without control
characters other than tab, newline, carriage return and form feed. Anything else,
executables included whatever they are called, is refused.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

from django.utils.translation import gettext as _

from accounts.support.exceptions import AttachmentRefused

MAX_FILES = 3
MAX_BYTES = 5 * 1024 * 1024
NAME_LENGTH = 100

_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png", ".png"),
    (b"\xff\xd8\xff", "image/jpeg", ".jpg"),
    (b"%PDF-", "application/pdf", ".pdf"),
)
_TEXT = ("text/plain", ".txt")
# C0 controls and DEL, except \t \n \f \r: a text file does not contain them.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_UNSAFE_NAME = re.compile(r"[^\w .()+-]")


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """An attachment that passed the checks: a safe name, its detected type, its bytes."""

    name: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def encoded(self) -> str:
        # EncryptedTextField holds text: the bytes travel base64-encoded inside the token.
        return base64.b64encode(self.data).decode("ascii")


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) of DATA by its content, or None when not accepted."""
    for signature, content_type, extension in _SIGNATURES:
        if data.startswith(signature):
            return content_type, extension
    if _CONTROL.search(data):
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return _TEXT


def safe_name(raw: str, extension: str) -> str:
    """The base name of RAW without path, controls or odd characters, ending in EXTENSION
    (the detected type's: a PNG sent as "shot.pdf" is kept as "shot.png")."""
    base = PureWindowsPath(PurePosixPath(raw).name).name
    base = unicodedata.normalize("NFKC", base)
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    stem = _UNSAFE_NAME.sub("_", stem).strip(" ._")[: NAME_LENGTH - len(extension)]
    return (stem or "attachment") + extension


def too_large(name: str) -> AttachmentRefused:
    return AttachmentRefused(
        _("%(name)s is larger than %(mb)d MB.")
        % {"name": safe_name(name, ""), "mb": MAX_BYTES // (1024 * 1024)}
    )


def attachment_check(*, name: str, data: bytes) -> CheckedFile:
    """The checked file, or AttachmentRefused naming what is wrong."""
    if not data:
        raise AttachmentRefused(_("%(name)s is empty.") % {"name": safe_name(name, "")})
    if len(data) > MAX_BYTES:
        raise too_large(name)
    kind = sniff(data)
    if kind is None:
        raise AttachmentRefused(
            _("%(name)s is not a PNG or JPEG image, a PDF or a plain text file.")
            % {"name": safe_name(name, "")}
        )
    content_type, extension = kind
    return CheckedFile(name=safe_name(name, extension), content_type=content_type, data=data)


def attachments_check(files: list[tuple[str, bytes]]) -> list[CheckedFile]:
    if len(files) > MAX_FILES:
        raise AttachmentRefused(
            _("At most %(count)d attachments per message.") % {"count": MAX_FILES}
        )
    return [attachment_check(name=name, data=data) for name, data in files]


def attachment_bytes(encoded: str) -> bytes:
    return base64.b64decode(encoded)
