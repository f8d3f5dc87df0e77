from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from billing import pg_functions


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.HOLD_PLACE)


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_default_pricing_group"),
        ("accounts", "0002_initial"),
        ("logs", "0001_initial"),
    ]
    operations = [migrations.RunPython(create, drop)]
