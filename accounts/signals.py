"""What accounts announces to the apps above it, which must not be imported from here.

Receivers run synchronously inside the sender's transaction, so a failing receiver rolls
the whole write back (billing gives every new organization its wallet this way).
"""

from __future__ import annotations

from django.dispatch import Signal

# Sent with organization=<Organization> once the organization and its owner exist.
organization_created = Signal()
