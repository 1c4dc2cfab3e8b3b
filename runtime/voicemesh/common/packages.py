"""Files that model packages ship, found without importing the packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_file(package: str, relative: str) -> Path:
    """Where an installed package keeps ``relative``.

    Found through the import system's spec rather than ``importlib.resources.files``, which runs the
    package's ``__init__``: silero_vad's imports torch and openwakeword's scikit-learn, which cost a
    client seconds and hundreds of megabytes for a file path.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the {package} package is not installed; it carries {relative}")
    return Path(next(iter(spec.submodule_search_locations))) / relative
