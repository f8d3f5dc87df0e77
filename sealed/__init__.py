"""Secrets encrypted at rest: Fernet encryption with rotating keys and the model field using it."""
