from django.dispatch import Signal

social_account_added: Signal
social_account_removed: Signal
