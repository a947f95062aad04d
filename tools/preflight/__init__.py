"""`make preflight`: read-only checks of the real AWS accounts before anything deploys (python -m tools.preflight)."""
