"""Support work orders: customers open them in the portal, staff answer in the admin.

Who sees what: owners and admins of an organization (the roles that manage its members)
see and answer all its work orders; members and billing members see only those they
opened. Staff see every order in the admin, and of the customer's request logs only the
metadata of the request ids the customer named (checked, when named, against the logs the
customer may see). Internal notes are staff-only: never in the portal, never emailed to
customers, never in a data export.

Privacy: subjects, messages and attachments are content the customer chose to send, so
they are stored (attachments encrypted at rest), included in the author's data export
(attachments by name and size only) and removed by account deletion
(`workorders_erase_for`): orders opened in the person's personal organization are deleted
with their thread; in team organizations, which other people share, the person's messages
keep their place in the thread but their text and attachments are removed and the author
is cleared, and the subjects of orders they opened are replaced.
"""
