"""AuditEvent moves to accounts (accounts 0015 takes it over): state only, the table
`logs_auditevent` and its rows stay where they are."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("logs", "0012_requestlog_partitions")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEvent")],
            database_operations=[],
        )
    ]
