"""allauth decides sign-in verification from its EmailAddress rows: give every user created
before allauth was installed one, verified exactly when User.email_verified says so."""

from django.db import migrations


def create_email_addresses(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    have = set(EmailAddress.objects.values_list("user_id", flat=True))
    EmailAddress.objects.bulk_create(
        [
            EmailAddress(user_id=u.pk, email=u.email, primary=True, verified=u.email_verified)
            for u in User.objects.exclude(pk__in=have).only("pk", "email", "email_verified")
        ]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_mfa_policy_legal_documents_data_exports"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(create_email_addresses, migrations.RunPython.noop)]
