"""Portal forms for verification requests. Everything here is untrusted input: the legal
details go through the invoice-detail cleaners of accounts/forms.py, the documents are
checked by content (documents.py)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from accounts.forms import (
    ADDRESS_MAX,
    LEGAL_NAME_MAX,
    TAX_ID_MAX,
    billing_address_clean,
    country_clean,
    legal_name_clean,
    tax_id_clean,
)
from accounts.support.attachments import CheckedFile
from accounts.verification.documents import MAX_BYTES, MAX_FILES, document_check, too_large
from accounts.verification.exceptions import VerificationRefused
from accounts.verification.services import MESSAGE_MAX, VerificationDetails

CONTACT_NAME_MAX = 150


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class DocumentsField(forms.FileField):
    """Up to MAX_FILES documents, each checked by its content; cleans to CheckedFile
    values. `min_files` of them are required."""

    widget = MultipleFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg"})

    def __init__(self, *, min_files: int = 1, **kwargs: Any) -> None:
        super().__init__(required=min_files > 0, **kwargs)
        self.min_files = min_files

    def clean(self, data: Any, initial: Any = None) -> list[CheckedFile]:
        files = [f for f in (data if isinstance(data, list | tuple) else [data]) if f]
        if len(files) < self.min_files:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        if len(files) > MAX_FILES:
            raise forms.ValidationError(
                _("At most %(count)d documents.") % {"count": MAX_FILES}, code="max_files"
            )
        checked = []
        for upload in files:
            if not isinstance(upload, UploadedFile):
                raise forms.ValidationError(_("Not a file."), code="invalid")
            try:
                if (upload.size or 0) > MAX_BYTES:
                    raise too_large(upload.name or "")
                checked.append(
                    document_check(name=upload.name or "", data=upload.read(MAX_BYTES + 1))
                )
            except VerificationRefused as exc:
                raise forms.ValidationError(str(exc), code="document") from None
        return checked


class VerificationForm(forms.Form):
    """A new request: the legal details and 1 to MAX_FILES documents."""

    legal_name = forms.CharField(label=gettext_lazy("Legal name"), max_length=LEGAL_NAME_MAX)
    registration_number = forms.CharField(
        label=gettext_lazy("Registration number"),
        max_length=TAX_ID_MAX,
        help_text=gettext_lazy("As in the company register, or your VAT number."),
    )
    country = forms.CharField(
        label=gettext_lazy("Country"),
        max_length=2,
        help_text=gettext_lazy("Two-letter ISO 3166 code, such as DE or US."),
    )
    address = forms.CharField(  # its length is checked once line ends are counted
        label=gettext_lazy("Registered address"),
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4, "maxlength": ADDRESS_MAX}),
    )
    contact_name = forms.CharField(label=gettext_lazy("Contact name"), max_length=CONTACT_NAME_MAX)
    contact_email = forms.EmailField(label=gettext_lazy("Contact email"))
    documents = DocumentsField(
        label=gettext_lazy("Documents"),
        help_text=gettext_lazy(
            "1 to 5 files of at most 10 MB each, PDF, PNG or JPEG: a certificate of "
            "incorporation or a register extract, for example."
        ),
    )

    def clean_legal_name(self) -> str:
        return legal_name_clean(self.cleaned_data["legal_name"])

    def clean_registration_number(self) -> str:
        return tax_id_clean(self.cleaned_data["registration_number"])

    def clean_country(self) -> str:
        return country_clean(self.cleaned_data["country"])

    def clean_address(self) -> str:
        address = billing_address_clean(self.cleaned_data["address"])
        if not address:
            raise forms.ValidationError(_("This field is required."), code="required")
        return address

    def clean_contact_name(self) -> str:
        name: str = self.cleaned_data["contact_name"]
        if not name.isprintable():
            raise forms.ValidationError(
                _("A name is one line without control characters."), code="control"
            )
        return name

    def details(self) -> VerificationDetails:
        data = self.cleaned_data
        return VerificationDetails(
            legal_name=data["legal_name"],
            registration_number=data["registration_number"],
            country=data["country"],
            address=data["address"],
            contact_name=data["contact_name"],
            contact_email=data["contact_email"],
        )


class ResubmitForm(VerificationForm):
    """The answer to a request for more information: the details again (prefilled), a
    note, and any further documents."""

    note = forms.CharField(
        label=gettext_lazy("Your answer"),
        max_length=MESSAGE_MAX,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    documents = DocumentsField(
        min_files=0,
        label=gettext_lazy("More documents"),
        help_text=gettext_lazy(
            "Optional: PDF, PNG or JPEG files of at most 10 MB each; 5 documents per request "
            "in all."
        ),
    )
