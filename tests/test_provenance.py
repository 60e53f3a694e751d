import re
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement

from robust_edit import provenance
from robust_edit.provenance import LOCK, ROOT, canonical, installed, lock_drift, lock_pins

# `pip freeze` leaves out the installer's own packages.
FREEZE_HIDES = {"pip", "setuptools", "wheel", "distribute"}


def _freeze() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                         capture_output=True, text=True, check=True).stdout
    pins = {}
    for line in out.splitlines():
        name, sep, ver = line.partition("==")
        assert sep, f"pip freeze line that is not a pin: {line!r}"
        pins[canonical(name)] = ver
    return pins


@pytest.mark.lockfile
def test_venv_is_exactly_the_lock():
    """The README's commands install the lock: pip freeze (minus the project) is its pins."""
    want = {n: v for n, v in lock_pins().items() if n not in FREEZE_HIDES}
    have = _freeze()
    assert have == want, {n: (want.get(n), have.get(n)) for n in want.keys() | have.keys()
                          if want.get(n) != have.get(n)}
    assert lock_drift() == []
    assert re.fullmatch(r"[0-9a-f]{64}", provenance.package_versions()["requirements.lock"])


def test_lock_pins_pyproject_requirements_within_their_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pins = lock_pins()
    for raw in project["dependencies"] + extras["hf"] + extras["dev"]:
        req = Requirement(raw)
        assert canonical(req.name) in pins, f"{req.name} is not in the lock: run `make lock`"
        assert req.specifier.contains(pins[canonical(req.name)]), \
            f"lock pins {req.name}=={pins[canonical(req.name)]}, outside {req.specifier}"
    # The torch build and its torchvision pair, as the README documents them.
    assert pins["torch"].startswith("2.14.") and pins["torchvision"] == "0.29.1"


def test_every_lock_pin_carries_hashes():
    blocks = re.split(r"\n(?=[A-Za-z0-9])", LOCK.read_text().split("\n", 2)[2])
    assert len(blocks) == len(lock_pins()) > 100
    for block in blocks:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), block.splitlines()[0]


def test_lock_drift_names_each_difference(tmp_path):
    have = {n: v for n, v in installed().items() if n not in provenance.UNLOCKED}
    same = tmp_path / "same.lock"
    same.write_text("".join(f"{n}=={v} \\\n    --hash=sha256:{'0' * 64}\n" for n, v in have.items()))
    assert lock_drift(same) == []
    changed = dict(have, torch="0.0.1", **{"not-a-package": "1.0"})
    del changed["numpy"]
    other = tmp_path / "other.lock"
    other.write_text("".join(f"{n}=={v}\n" for n, v in changed.items()))
    assert lock_drift(other) == [
        "not-a-package: lock 1.0, installed none",
        f"torch: lock 0.0.1, installed {have['torch']}",
        f"numpy: installed {have['numpy']}, not in the lock"]


def test_paths_a_process_adds_to_sys_path_are_not_the_environment(tmp_path, monkeypatch):
    """Ray workers put ray/thirdparty_files (a vendored colorama) on sys.path."""
    import sys

    vendored = tmp_path / "thirdparty_files" / "colorama-0.0.1.dist-info"
    vendored.mkdir(parents=True)
    (vendored / "METADATA").write_text("Metadata-Version: 2.1\nName: colorama\nVersion: 0.0.1\n")
    monkeypatch.setattr(sys, "path", [*sys.path, str(vendored.parent)])
    assert installed().get("colorama") != "0.0.1"
