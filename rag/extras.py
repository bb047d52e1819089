"""Optional dependencies: imported when a feature needs them, with one line naming the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtra


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import `module` for `feature`, or say which extra of this package brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(f'{feature} needs {module.split(".")[0]}, which is not installed: '
                           f'pip install "rag[{extra}]"') from None
