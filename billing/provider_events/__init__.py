"""Verified payment provider events applied to top-ups and subscriptions; one module per
provider (the providers' clients in billing/providers know nothing of top-ups)."""
