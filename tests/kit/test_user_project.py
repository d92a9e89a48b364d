"""A user's project, built from the README's "Test your own DAGs against it" files, tested with ``python -m pytest``.

The running interpreter is used, so the Airflow 3.3 suite (``.venv``) and the Airflow 2.11 suite (``.venv-af211``)
each prove it on their Airflow. The subprocess gets a fresh shell's environment (no ``AIRFLOW_*``, no CA variables)
and its own ``HOME``, so nothing this suite set up can leak in, and nothing may be written to ``~/airflow``.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

from tests.kit.readme import clean_env, python_snippets

PROJECT_FILES = ("conftest.py", "dags/my_backup_dag.py", "tests/test_my_backup_dag.py")


def readme_project_files() -> dict[str, str]:
    files = {s.file_path: s.code for s in python_snippets() if s.file_path in PROJECT_FILES}
    assert sorted(files) == sorted(PROJECT_FILES), f"README.md lacks some of {PROJECT_FILES}; found {sorted(files)}"
    return files  # type: ignore[return-value]


def write_project(root: pathlib.Path, files: dict[str, str]) -> None:
    for relative, code in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(code, encoding="utf-8")


def run_pytest(root: pathlib.Path) -> subprocess.CompletedProcess[str]:
    home = root.parent / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        check=False,
        cwd=root,
        env=clean_env(HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_readme_dag_test_passes_as_written_in_a_fresh_project(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "project"
    write_project(root, readme_project_files())
    result = run_pytest(root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in output, output
    assert not (tmp_path / "home" / "airflow").exists()  # the throwaway AIRFLOW_HOME was used, not ~/airflow


def test_airflow_imported_before_the_plugin_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "project"
    files = readme_project_files()
    files["conftest.py"] = "import airflow  # too early\n\n" + files["conftest.py"]
    write_project(root, files)
    result = run_pytest(root)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Airflow was imported before the plugin could configure it" in output, output


def test_ini_option_names_the_dags_folder_and_airflow_reads_it(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "project"
    write_project(
        root,
        {
            "conftest.py": readme_project_files()["conftest.py"],
            "pytest.ini": "[pytest]\nazure_backup_dags_folder = airflow/dags\n",
            "tests/test_config.py": (
                "def test_config(airflow_home, dags_folder):\n"
                "    from airflow.configuration import conf\n\n"
                "    assert dags_folder.parts[-2:] == ('airflow', 'dags'), dags_folder\n"
                "    assert conf.get('core', 'dags_folder') == str(dags_folder)\n"
                "    assert conf.get('database', 'sql_alchemy_conn') == f\"sqlite:///{airflow_home / 'airflow.db'}\"\n"
                "    assert not conf.getboolean('core', 'load_examples')\n"
            ),
        },
    )
    result = run_pytest(root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "1 passed" in output, output
