"""The parts of a person's data that the apps above accounts hold, for accounts.privacy.

accounts must not import billing or logs, so each app registers its part of the
"Download my data" archive and of account deletion here from its AppConfig.ready(), as
billing listens to accounts.signals.organization_created.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from accounts.models import User


@dataclass(frozen=True, slots=True)
class ExportSubject:
    """Whose archive: the person, the keys they created, the organizations whose billing
    they may see."""

    user: User
    key_ids: list[int]
    billing_organization_ids: list[int]


@dataclass(frozen=True, slots=True)
class ErasureSubject:
    """Whose data to erase: the person (email as it was before deletion) and the keys
    revoked with them (their own and their personal organization's)."""

    user: User
    email: str
    key_ids: list[int]


# An archive section: its rows, JSON-serialisable by DjangoJSONEncoder.
Export = Callable[[ExportSubject], list[Mapping[str, object]]]
# Runs inside account deletion's transaction.
Erase = Callable[[ErasureSubject], None]


@dataclass(frozen=True, slots=True)
class PrivacySection:
    name: str  # the archive's key ("ledger", "request_logs")
    export: Export
    erase: Erase | None = None


_sections: dict[str, PrivacySection] = {}


def privacy_section_register(*, name: str, export: Export, erase: Erase | None = None) -> None:
    """Add (or, registered again under NAME, replace) an app's part."""
    _sections[name] = PrivacySection(name=name, export=export, erase=erase)


def privacy_sections() -> list[PrivacySection]:
    """The registered parts, in the order of INSTALLED_APPS (the order of ready())."""
    return list(_sections.values())
