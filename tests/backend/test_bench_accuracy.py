"""bench/accuracy.py: option checks (before any work), and the row names (body type, held-out)
on real clips of two small frames (Blender renders them; the estimator runs on them)."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "accuracy.py"
# two small frames have no planted feet or judged frames: empty means, reported as NaN
pytestmark = [pytest.mark.filterwarnings("ignore:Mean of empty slice:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")]


@pytest.fixture(autouse=True)
def logging_restored():
    """The script's main() configures logging for a console (root handler, quieter
    scail_backend); put it back so that later tests see the logging they expect."""
    names = ("", "scail_backend", "absl")
    levels = {name: logging.getLogger(name).level for name in names}
    handlers = list(logging.getLogger().handlers)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    logging.getLogger().handlers[:] = handlers


@pytest.fixture(scope="module")
def accuracy():
    spec = importlib.util.spec_from_file_location("bench_accuracy", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("option, value", [("--tuned", "nope"), ("--bodies", "bogus"),
                                           ("--tuned", "average,nope")])
def test_unknown_body_names_are_refused_with_the_valid_ones(accuracy, tmp_path, capsys,
                                                             option, value):
    cache = tmp_path / "cache"
    with pytest.raises(SystemExit) as exit_info:
        accuracy.main(["--cache", str(cache), option, value])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    bad = value.split(",")[-1]
    assert f"error: {option}: unknown body type '{bad}'" in error
    assert "average, child" in error and "short_heavy" in error
    assert not cache.exists()  # refused before any work


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Real clips (Blender) of 2 small frames, shared by the tests; the estimator runs on them."""
    pytest.importorskip("bpy")
    return tmp_path_factory.mktemp("accuracy_cache")


def _run(accuracy, cache, tmp_path, capsys, *options) -> tuple:
    out = tmp_path / "out.json"
    code = accuracy.main(["--cache", str(cache), "--motions", "wave", "--cameras", "front",
                          "--frames", "2", "--resolution", "128", "224", "--estimator",
                          "mediapipe", "--json", str(out), *options])
    assert code == 0
    table = capsys.readouterr().out
    names = [line.split("  ")[0].strip() for line in table.splitlines()[3:] if line.strip()]
    return table, names, list(json.loads(out.read_text()))


def test_one_held_out_body_is_named_and_marked(accuracy, cache, tmp_path, capsys):
    table, names, keys = _run(accuracy, cache, tmp_path, capsys, "--bodies", "short_heavy")
    assert keys == ["short_heavy/wave/front (held-out)", "ALL (short_heavy, held-out)"]
    assert names[:2] == keys
    assert "224x128 (width x height)" in table.splitlines()[0]   # --resolution is H W


def test_one_tuning_body_is_named(accuracy, cache, tmp_path, capsys):
    _, _, keys = _run(accuracy, cache, tmp_path, capsys, "--bodies", "stocky")
    assert keys == ["stocky/wave/front", "ALL (stocky, not held-out)"]


def test_several_bodies_pool_per_body_and_say_what_all_holds(accuracy, cache, tmp_path,
                                                             capsys):
    _, names, keys = _run(accuracy, cache, tmp_path, capsys, "--bodies", "stocky,short_heavy")
    assert keys == ["stocky/wave/front", "short_heavy/wave/front (held-out)", "stocky",
                    "short_heavy (held-out)", "ALL (2 bodies, 1 held-out)"]
    assert names[:5] == keys


def test_the_default_body_keeps_plain_names_unless_held_out(accuracy, cache, tmp_path,
                                                            capsys):
    _, _, keys = _run(accuracy, cache, tmp_path, capsys)
    assert keys == ["wave/front", "ALL"]
    _, _, keys = _run(accuracy, cache, tmp_path, capsys, "--tuned", "child")
    assert keys == ["average/wave/front (held-out)", "ALL (average, held-out)"]
