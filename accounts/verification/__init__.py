"""Verified organizations: an organization's owners or admins submit its legal details and
documents from the portal, staff approve, reject or ask for more in the admin, and the
operator's VERIFICATION_* settings decide what a verified organization may do."""
