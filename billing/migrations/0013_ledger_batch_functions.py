from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps

from billing import pg_functions


def create(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # The relay's fast ledger places the holds queued during a round trip in one call,
    # and its settlement asks whether a request was logged through a function.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.HOLD_PLACE_MANY + pg_functions.REQUEST_LOGGED)


def drop(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(pg_functions.DROP_BATCH_FUNCTIONS)


class Migration(migrations.Migration):
    dependencies = [("billing", "0012_invoices")]

    operations = [migrations.RunPython(create, drop)]
