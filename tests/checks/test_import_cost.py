"""Importing the checks loads no library that only running a check needs.

`data_platform.definitions` imports the checks, so every Dagster process (webserver, daemon,
each run) pays for what they import. The detector's libraries load when a check first judges a
point. pyarrow is not in the list: pandas itself imports it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LAZY = ("sklearn", "pyod", "matplotlib", "scipy", "statsmodels")


def loaded_after_import(module: str) -> list[str]:
    """The LAZY libraries in sys.modules after importing `module` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps(sorted({{name.split('.')[0] for name in sys.modules}} & set({LAZY!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    "module",
    [
        "data_platform.checks",
        # What the assets import for their metadata: any module of the package runs its __init__.
        "data_platform.quality.health",
    ],
)
def test_importing_loads_no_heavy_library(module):
    assert loaded_after_import(module) == []


def test_the_detector_still_loads_its_libraries_when_asked_for():
    code = (
        "import sys\n"
        "import data_platform.quality as quality\n"
        "from data_platform.quality.anomaly import detect\n"
        "assert quality.detect is detect and 'scipy' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
