"""Operator that triggers a restore from a recovery point (placeholder until the restore step lands)."""
