"""Tests of the Azure Backup emulator itself."""
