"""AuditEvent comes over from logs (logs 0013 let go of it): state only, the table
`logs_auditevent`, its rows and its indexes (same names) stay as they are."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0014_verification"),
        ("logs", "0013_auditevent_to_accounts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("sign_in", "Signed in"),
                                    ("sign_in_failed", "Sign-in failed"),
                                    ("sign_in_new_ip", "Signed in from a new address"),
                                    ("sign_out", "Signed out"),
                                    ("sign_up", "Signed up"),
                                    ("email_verified", "Email verified"),
                                    ("password_changed", "Password changed"),
                                    ("password_reset", "Password reset"),
                                    ("mfa_enabled", "Two-factor method added"),
                                    ("mfa_disabled", "Two-factor method removed"),
                                    ("recovery_codes_generated", "Recovery codes generated"),
                                    ("social_linked", "Sign-in provider linked"),
                                    ("social_unlinked", "Sign-in provider unlinked"),
                                    ("sessions_ended", "Other sessions signed out"),
                                    ("legal_accepted", "Legal documents accepted"),
                                    ("data_exported", "Data export requested"),
                                    ("account_deleted", "Account deleted"),
                                    ("key_created", "API key created"),
                                    ("key_rotated", "API key rotated"),
                                    ("key_revoked", "API key revoked"),
                                    ("key_changed", "API key settings changed"),
                                    ("member_added", "Member added"),
                                    ("role_changed", "Role changed"),
                                    ("member_removed", "Member removed"),
                                    ("mfa_policy_changed", "Organization MFA policy changed"),
                                    ("org_settings_changed", "Organization settings changed"),
                                    ("request_logs_deleted", "Request logs deleted"),
                                    ("payment_settings_changed", "Payment settings changed"),
                                    ("balance_adjusted", "Balance adjusted"),
                                    ("subscription_changed", "Subscription changed"),
                                    ("impersonation", "Admin impersonation"),
                                ],
                                max_length=40,
                            ),
                        ),
                        ("ip", models.GenericIPAddressField(blank=True, null=True)),
                        ("user_agent", models.CharField(blank=True, max_length=300)),
                        ("meta", models.JSONField(blank=True, default=dict)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "organization",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to="accounts.organization",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "logs_auditevent",
                        "indexes": [
                            models.Index(
                                fields=["user", "-created_at"],
                                name="logs_audite_user_id_3f9585_idx",
                            ),
                            models.Index(
                                fields=["organization", "-created_at"],
                                name="logs_audite_organiz_e1253e_idx",
                            ),
                            models.Index(
                                fields=["created_at"], name="logs_audite_created_66f96d_idx"
                            ),
                        ],
                    },
                )
            ],
            database_operations=[],
        )
    ]
