from django.db import migrations


def create_default_group(apps, schema_editor):  # type: ignore[no-untyped-def]
    PricingGroup = apps.get_model("billing", "PricingGroup")
    PricingGroup.objects.get_or_create(
        name="default", defaults={"multiplier": 1, "description": "Standard prices"}
    )


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(create_default_group, migrations.RunPython.noop)]
