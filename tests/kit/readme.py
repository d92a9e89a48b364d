"""The ```python blocks of README.md, with their line numbers and ``<!-- snippet: ... -->`` markers."""

from __future__ import annotations

import os
import pathlib
import re
from dataclasses import dataclass

REPO = pathlib.Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MARKER = re.compile(r"^<!--\s*snippet:\s*(?P<directive>[\w-]+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->$")
FILE_HEADER = re.compile(r"^# (?P<path>[\w./-]+\.py)$")


@dataclass(frozen=True)
class Snippet:
    line: int  # 1-based line of the opening ```python fence
    code: str
    directive: str | None  # e.g. "not-run"
    reason: str | None

    @property
    def file_path(self) -> str | None:
        """The path named by a first line like ``# dags/my_dag.py``, if any."""
        first = self.code.splitlines()[0] if self.code else ""
        match = FILE_HEADER.match(first.strip())
        return match.group("path") if match else None


def python_snippets(text: str | None = None) -> list[Snippet]:
    """Every ```python block, with the marker on the non-blank line right before its fence (if any).

    :param text: README text (default: this repository's README.md).
    :raises ValueError: for an unclosed block or an unknown marker directive.
    """
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    snippets: list[Snippet] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != "```python":
            index += 1
            continue
        start = index
        end = start + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise ValueError(f"README.md line {start + 1}: unclosed ```python block")
        directive = reason = None
        before = start - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        if before >= 0:
            marker = MARKER.match(lines[before].strip())
            if marker:
                directive, reason = marker.group("directive"), marker.group("reason")
                if directive != "not-run":
                    raise ValueError(f"README.md line {before + 1}: unknown snippet directive {directive!r}")
                if not (reason or "").strip():
                    raise ValueError(f"README.md line {before + 1}: a not-run snippet must say why, in parentheses")
        snippets.append(Snippet(start + 1, "\n".join(lines[start + 1 : end]) + "\n", directive, reason))
        index = end + 1
    return snippets


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without Airflow, CA, pytest and connection settings (a user's fresh shell)."""
    dropped = ("AIRFLOW", "PYTEST_", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "AZURE_BACKUP_", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(extra)
    return env
