"""The README's two commands install exactly the lock, and CI runs the README's test command."""

import re

from robust_edit.provenance import ROOT

INSTALL = ("python3 -m venv .venv && .venv/bin/pip install -r requirements.lock && "
           ".venv/bin/pip install --no-deps --no-build-isolation -e . && ")


def _readme_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_readme_commands_install_the_lock_then_run_the_quickstart_and_the_tests():
    assert _readme_commands() == [INSTALL + ".venv/bin/robust-edit quickstart",
                                  INSTALL + ".venv/bin/python -m pytest"]


def test_ci_runs_the_readme_test_command():
    assert _readme_commands()[1] in (ROOT / ".ci" / "run").read_text().splitlines()
