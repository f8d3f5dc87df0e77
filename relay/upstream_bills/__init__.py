"""Reconciliation against upstream bills: parsers for the providers' own cost exports
(one module per provider), the import service and the drift selector."""
