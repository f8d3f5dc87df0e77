"""{% mailbox_in_use as x %}: whether this server keeps emails in the operator's mailbox."""

from __future__ import annotations

from django import template

from accounts.mailbox import mailbox_in_use as _mailbox_in_use

register = template.Library()


@register.simple_tag
def mailbox_in_use() -> bool:
    return _mailbox_in_use()
