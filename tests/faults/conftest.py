"""Fixtures of the fault tests, and the count of kill cycles in the terminal summary."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_backup_provider.emulator import Emulator

from .killing import KILLS


@pytest.fixture
def fault_emulator(azure_backup_emulator: Emulator) -> Iterator[Emulator]:
    """The session emulator reset to its seed; 202s say ``Retry-After: 1``, operations finish at their first poll
    unless a fault holds them open."""
    azure_backup_emulator.configure(retry_after=1, operation_polls_in_progress=0)
    yield azure_backup_emulator
    azure_backup_emulator.clear_faults()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if KILLS.kills:
        terminalreporter.write_line(
            f"[faults] {KILLS.cycles} kill-after-POST cycle(s) passed; {len(KILLS.kills)} real task process(es) "
            "SIGKILLed after an accepted backup POST"
        )
