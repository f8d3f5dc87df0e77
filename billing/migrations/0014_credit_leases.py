import django.db.models.deletion
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from billing import pg_functions


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # th_hold_place counts leased credit as taken; the credit lease functions.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.HOLD_PLACE + pg_functions.CREDIT_LEASE)


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        # th_hold_place as it was before leased credit (the column goes next).
        before = pg_functions.HOLD_PLACE.replace(", w.leased INTO", " INTO")
        for leased in (" v_leased bigint;", ", v_leased", " + v_leased", " + leased"):
            before = before.replace(leased, "")
        schema_editor.execute(pg_functions.DROP_CREDIT_LEASE + before)


class Migration(migrations.Migration):
    dependencies = [("billing", "0013_ledger_batch_functions")]

    operations = [
        migrations.AddField(
            model_name="wallet",
            name="leased",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddConstraint(
            model_name="wallet",
            constraint=models.CheckConstraint(
                condition=models.Q(("leased__gte", 0)), name="wallet_leased_nonneg"
            ),
        ),
        migrations.CreateModel(
            name="CreditLease",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("lease_id", models.CharField(max_length=40)),
                ("amount", models.BigIntegerField(default=0, help_text="micro-USD")),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "wallet",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="credit_leases",
                        to="billing.wallet",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("lease_id", "wallet"), name="creditlease_once"),
                    models.CheckConstraint(
                        condition=models.Q(("amount__gte", 0)), name="creditlease_amount_nonneg"
                    ),
                ],
            },
        ),
        migrations.RunPython(create, drop),
    ]
