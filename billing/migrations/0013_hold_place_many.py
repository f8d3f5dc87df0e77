from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from billing import pg_functions


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # The relay's fast ledger places the holds queued during a round trip in one call.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.HOLD_PLACE_MANY)


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.DROP_HOLD_PLACE_MANY)


class Migration(migrations.Migration):
    dependencies = [("billing", "0012_invoices")]

    operations = [migrations.RunPython(create, drop)]
