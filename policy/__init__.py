"""The CrossGuard policy pack (run by the Pulumi CLI from this directory; see __main__.py)."""
