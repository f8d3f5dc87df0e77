from django.db import migrations

from billing import pg_functions


def create(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.HOLD_PLACE)


def drop(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_default_pricing_group"),
        ("accounts", "0002_initial"),
        ("logs", "0001_initial"),
    ]
    operations = [migrations.RunPython(create, drop)]
