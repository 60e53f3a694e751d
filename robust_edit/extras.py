"""Optional dependencies: each belongs to an extra of pyproject.toml, and its absence is one
line naming that extra, raised before any compute where the caller can check it then."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

# module -> the extra (pyproject.toml [project.optional-dependencies]) that installs it
EXTRAS = {"datasets": "hf", "nudenet": "nudenet"}


class MissingExtra(ImportError):
    pass


def installed(module: str) -> bool:
    """Can `module` be imported (as far as finding it tells)? Imports nothing."""
    return importlib.util.find_spec(module) is not None


def check(module: str, needed_for: str) -> None:
    """Raise MissingExtra unless `module` can be imported; imports nothing."""
    if not installed(module):
        extra = EXTRAS[module]
        raise MissingExtra(f"{needed_for} needs the '{module}' package, which is not installed: "
                           f"pip install 'robust-edit[{extra}]' (in a checkout: "
                           f"pip install -e '.[{extra}]')")


def require(module: str, needed_for: str) -> ModuleType:
    check(module, needed_for)
    return importlib.import_module(module)
