from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from billing import pg_functions


def replace_hold_place(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # th_hold_place checks the credit line's floor instead of zero.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.HOLD_PLACE)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0012_invoice_details"),
        ("billing", "0010_documents"),
    ]

    operations = [
        migrations.AddField(
            model_name="wallet",
            name="credit_limit",
            field=models.BigIntegerField(db_default=0, default=0, help_text="micro-USD"),
        ),
        migrations.AddConstraint(
            model_name="wallet",
            constraint=models.CheckConstraint(
                condition=models.Q(("credit_limit__gte", 0)), name="wallet_credit_limit_nonneg"
            ),
        ),
        migrations.RunPython(replace_hold_place, migrations.RunPython.noop),
    ]
