"""The emulated Azure Backup ARM API: :mod:`.service` (pipeline), :mod:`.routes` (route table), :mod:`.handlers`."""

from airflow_backup_provider.emulator.arm.service import ArmService

__all__ = ["ArmService"]
