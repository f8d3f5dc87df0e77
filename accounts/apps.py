from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "People, organizations and keys"

    def ready(self) -> None:
        from accounts import audit_signals  # noqa: F401 - connects the receivers
