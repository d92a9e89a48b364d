"""Every ```python block of README.md, run as written in a fresh interpreter against a running emulator.

The default is "must run": a block is skipped only when the line before it (blank lines aside) says
``<!-- snippet: not-run (why) -->``. Each block runs alone (``python snippet.py``) with the emulator's
``client_env()`` (connection + CA bundle), a throwaway ``AIRFLOW_HOME`` and nothing else from this suite's environment.
A failure names the README line of the block's opening fence.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from collections.abc import Iterator

import pytest

from airflow_backup_provider.emulator import Emulator, EmulatorConfig
from tests.kit.readme import Snippet, clean_env, python_snippets

SNIPPETS = python_snippets()
# Fast enough that a README wait (`wait_for_job(poll_interval=30)`) finds a 20-minute backup done at its first GET.
TIME_SCALE = 1_000_000.0


@pytest.fixture(scope="module")
def readme_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    ca_dir = tmp_path_factory.mktemp("readme-emulator")
    emulator = Emulator(EmulatorConfig(port=0, time_scale=TIME_SCALE), ca_file=ca_dir / "ca.pem").start()
    try:
        yield emulator
    finally:
        emulator.stop()


def test_readme_has_python_snippets() -> None:
    assert len(SNIPPETS) >= 5, [s.line for s in SNIPPETS]


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[f"README-line-{s.line}" for s in SNIPPETS])
def test_readme_snippet_runs_as_written(snippet: Snippet, readme_emulator: Emulator, tmp_path: pathlib.Path) -> None:
    if snippet.directive == "not-run":
        pytest.skip(f"README.md line {snippet.line}: marked not-run ({snippet.reason})")
    readme_emulator.reset()
    home = tmp_path / "airflow-home"
    home.mkdir()
    script = tmp_path / f"readme_line_{snippet.line}.py"
    script.write_text(snippet.code, encoding="utf-8")
    env = clean_env(
        HOME=str(tmp_path),
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        **readme_emulator.client_env(),
    )
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"README.md line {snippet.line}: the ```python block did not finish in 180 s", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"README.md line {snippet.line}: the ```python block failed (exit {result.returncode}); its line 1 is "
            f"README line {snippet.line + 1}. Fix it, or mark it with <!-- snippet: not-run (why) --> on the line "
            f"before.\n--- output ---\n{result.stdout}{result.stderr}",
            pytrace=False,
        )


def test_markers_are_parsed_strictly() -> None:
    text = "\n".join(
        [
            "```python",
            "print(1)",
            "```",
            "<!-- snippet: not-run (needs a real vault) -->",
            "",
            "```python",
            "print(2)",
            "```",
            "<!-- a comment that is no marker -->",
            "```python",
            "print(3)",
            "```",
        ]
    )
    first, second, third = python_snippets(text)
    assert (first.line, first.directive, first.code) == (1, None, "print(1)\n")
    assert (second.line, second.directive, second.reason) == (6, "not-run", "needs a real vault")
    assert third.directive is None  # the default is "must run"
    with pytest.raises(ValueError, match="line 1: unknown snippet directive 'skip'"):
        python_snippets("<!-- snippet: skip (x) -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="must say why"):
        python_snippets("<!-- snippet: not-run -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="line 2: unclosed"):
        python_snippets("text\n```python\npass\n")
