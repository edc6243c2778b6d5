"""The file kinds registry: each format module registers its own kinds, and the package imports
every format module, so no kind can go missing from `FILE_KINDS` or from the source specs."""

from __future__ import annotations

import json
import subprocess
import sys
from types import ModuleType

import pytest

from data_platform.sources import KINDS
from data_platform.sources.files import FILE_KINDS, FORMATS, LOADERS, registry

PACKAGE = "data_platform.sources.files"
# kind: (module that reads it, entities it provides, the first one primary)
EXPECTED = {
    "movielens": ("movielens", ("ratings", "products", "customers")),
    "online_retail": ("online_retail", ("orders", "products", "customers")),
    "orders_csv": ("orders_csv", ("orders",)),
    "labelled_text": ("labelled_text", ("reviews",)),
    "polarity": ("polarity", ("reviews",)),
}


def test_every_kind_is_registered_by_its_own_module_in_a_fixed_order():
    assert list(FILE_KINDS) == list(EXPECTED) == list(LOADERS)
    for kind, (module, entities) in EXPECTED.items():
        assert LOADERS[kind].__module__ == f"{PACKAGE}.{module}", kind
        assert FILE_KINDS[kind] == (entities[0], entities)
    assert KINDS == ("synthetic", *EXPECTED, "sql")


def test_every_module_of_the_package_is_imported_by_the_package():
    # In a fresh interpreter: a format module the package forgot to import registers its kind
    # only when something imports it by name, so the kinds would change here.
    script = f"""
import importlib, json, pkgutil
import {PACKAGE} as files
before = list(files.FILE_KINDS)
for info in pkgutil.iter_modules(files.__path__):
    importlib.import_module(f"{PACKAGE}." + info.name)
print(json.dumps([before, list(files.FILE_KINDS)]))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    before, after = json.loads(out)
    assert before == after == list(EXPECTED)


def test_a_format_module_that_registers_no_kind_is_refused():
    silent = ModuleType(f"{PACKAGE}.silent")
    with pytest.raises(
        ImportError, match=r"without a kind: \['data_platform.sources.files.silent'\]"
    ):
        registry.settle((*FORMATS, silent))
    with pytest.raises(ImportError, match=r"kinds of no format: \['polarity'\]"):
        registry.settle(FORMATS[:-1])
    assert list(FILE_KINDS) == list(EXPECTED)


def test_a_kind_registered_by_two_modules_is_refused(monkeypatch):
    monkeypatch.setattr(registry, "FILE_KINDS", dict(FILE_KINDS))
    monkeypatch.setattr(registry, "LOADERS", dict(LOADERS))

    def load_other_orders(path, entity, start, end, options, fallback):
        raise AssertionError("never called")

    load_other_orders.__module__ = f"{PACKAGE}.other_orders"
    with pytest.raises(ValueError, match="'orders_csv' is registered by .*orders_csv and .*other"):
        registry.register_kind("orders_csv", ("orders",))(load_other_orders)
    assert registry.LOADERS["orders_csv"] is LOADERS["orders_csv"]
