from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        # Imported here, once the models are loaded: accounts announces new organizations
        # and collects a person's data, and must not import billing, so billing registers.
        from accounts.privacy_sections import privacy_section_register
        from accounts.signals import organization_created
        from billing.privacy import ledger_export, payment_events_erase
        from billing.services import wallet_create_on_signal

        organization_created.connect(wallet_create_on_signal, dispatch_uid="billing.wallet_create")
        privacy_section_register(name="ledger", export=ledger_export, erase=payment_events_erase)
