from django.dispatch import Signal

authentication_failed: Signal
authenticator_added: Signal
authenticator_removed: Signal
authenticator_reset: Signal
