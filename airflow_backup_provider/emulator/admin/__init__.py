"""The ``/_emulator/`` admin API: :mod:`.routes` (server side) and :mod:`.client` (:class:`AdminClient`)."""

from airflow_backup_provider.emulator.admin.client import AdminClient

__all__ = ["AdminClient"]
