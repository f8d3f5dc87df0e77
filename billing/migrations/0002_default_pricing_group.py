from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps


def create_default_group(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    PricingGroup = apps.get_model("billing", "PricingGroup")
    PricingGroup.objects.get_or_create(
        name="default", defaults={"multiplier": 1, "description": "Standard prices"}
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(create_default_group, migrations.RunPython.noop)]
