"""Portal forms for work orders. Everything here is untrusted input: lengths are bounded,
attachments are checked by content (attachments.py) and request ids against the logs the
member may see."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.models import Membership, WorkOrder
from accounts.support.attachments import (
    MAX_BYTES,
    MAX_FILES,
    CheckedFile,
    attachments_check,
    too_large,
)
from accounts.support.exceptions import AttachmentRefused
from logs.selectors import request_ids_unknown

SUBJECT_LENGTH = 200
BODY_LENGTH = 20_000
MAX_REQUEST_IDS = 20
# TokenHub's request ids (req_<32 hex>) and what the relay accepts as a client's own.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SEPARATORS = re.compile(r"[\s,;]+")


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class AttachmentsField(forms.FileField):
    """Up to MAX_FILES files, each checked by its content; cleans to CheckedFile values."""

    widget = MultipleFileInput(attrs={"accept": ".png,.jpg,.jpeg,.pdf,.txt,.log"})

    def clean(self, data: Any, initial: Any = None) -> list[CheckedFile]:
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if len(files) > MAX_FILES:
            raise forms.ValidationError(
                _("At most %(count)d attachments per message.") % {"count": MAX_FILES}
            )
        read: list[tuple[str, bytes]] = []
        for upload in files:
            if not isinstance(upload, UploadedFile):
                raise forms.ValidationError(_("Not a file."))
            if (upload.size or 0) > MAX_BYTES:
                raise forms.ValidationError(str(too_large(upload.name or "")))
            read.append((upload.name or "", upload.read(MAX_BYTES + 1)))
        try:
            return attachments_check(read)
        except AttachmentRefused as exc:
            raise forms.ValidationError(str(exc)) from None


class _MessageForm(forms.Form):
    body = forms.CharField(
        label=gettext_lazy("Message"),
        max_length=BODY_LENGTH,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 8}),
    )
    attachments = AttachmentsField(
        label=gettext_lazy("Attachments"),
        required=False,
        help_text=gettext_lazy(
            "Up to 3 files of at most 5 MB each: PNG or JPEG images, PDF, plain text."
        ),
    )


class WorkOrderForm(_MessageForm):
    category = forms.ChoiceField(label=gettext_lazy("Category"), choices=WorkOrder.Category.choices)
    subject = forms.CharField(label=gettext_lazy("Subject"), max_length=SUBJECT_LENGTH)
    request_ids = forms.CharField(
        label=gettext_lazy("Request ids (optional)"),
        required=False,
        max_length=MAX_REQUEST_IDS * 66,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy(
            "Ids of failing calls (the X-Request-Id header, or the logs page), one per line: "
            "our staff then see those requests' details, nothing else of your logs."
        ),
    )

    field_order = ("category", "subject", "body", "request_ids", "attachments")

    def __init__(self, *args: Any, membership: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.membership = membership

    def clean_request_ids(self) -> list[str]:
        raw = self.cleaned_data.get("request_ids", "")
        ids = list(dict.fromkeys(part for part in _SEPARATORS.split(raw) if part))
        if len(ids) > MAX_REQUEST_IDS:
            raise forms.ValidationError(
                _("At most %(count)d request ids.") % {"count": MAX_REQUEST_IDS}
            )
        malformed = [rid for rid in ids if not _REQUEST_ID.fullmatch(rid)]
        if malformed:
            raise forms.ValidationError(
                _("This is not a request id: %(id)s") % {"id": malformed[0][:64]}
            )
        unknown = request_ids_unknown(membership=self.membership, request_ids=ids)
        if unknown:
            raise forms.ValidationError(
                _("No request of yours has the id %(id)s.") % {"id": unknown[0]}
            )
        return ids


class ReplyForm(_MessageForm):
    pass
