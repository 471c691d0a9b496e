"""Fixtures for the Blender add-on tests: the add-on registered in the ``bpy`` module, a fresh
scene per test, small synthetic takes, and a real backend on loopback."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # helpers beside this file

from addon_helpers import PACKAGE, ServerProcess  # noqa: E402

ADDON_DIR = Path(__file__).resolve().parents[2] / "blender_addon"


@pytest.fixture(scope="session")
def addon():
    """The add-on package imported from blender_addon/ and registered (once per session)."""
    pytest.importorskip("bpy")
    module = sys.modules.get(PACKAGE)
    if module is None:
        spec = importlib.util.spec_from_file_location(
            PACKAGE, ADDON_DIR / "__init__.py", submodule_search_locations=[str(ADDON_DIR)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        spec.loader.exec_module(module)
    module.register()
    yield module
    module.unregister()


@pytest.fixture
def scene(addon):
    """An empty scene (factory settings) with the add-on still registered."""
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


@pytest.fixture
def server(tmp_path):
    """A real backend on loopback (run by ``backend_python()``); skipped when there is none."""
    proc = ServerProcess(tmp_path)
    yield proc
    proc.kill()
