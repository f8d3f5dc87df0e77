from django.dispatch import Signal

user_signed_up: Signal
password_changed: Signal
password_set: Signal
password_reset: Signal
email_confirmed: Signal
