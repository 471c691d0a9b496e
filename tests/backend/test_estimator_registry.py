"""Choosing an estimator by name (auto, mediapipe, nlf); the weights manifest, check, download."""

from __future__ import annotations

import hashlib
import json

import pytest

from scail_backend import weights
from scail_backend.cli import main
from scail_backend.estimators import registry
from scail_protocol.errors import EstimatorError, WeightsMissing

NLF_FILES = [f for f in weights.load_manifest() if "nlf" in f.used_by]


@pytest.fixture
def full_weights(tmp_path):
    """A weights folder where every nlf file exists (empty stand-ins: presence only)."""
    folder = tmp_path / "weights"
    for f in NLF_FILES:
        (folder / f.path).parent.mkdir(parents=True, exist_ok=True)
        (folder / f.path).write_bytes(b"")
    return folder


def test_manifest_lists_the_reference_weights_with_sources():
    names = {f.name for f in weights.load_manifest()}
    assert names == {"yolox_l.onnx", "dw-ll_ucoco_384.onnx", "nlf_l_multi_0.3.2.torchscript"}
    assert all(f.url.startswith("https://") for f in weights.load_manifest())


def test_weights_dir_resolves_argument_then_env_then_project(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path / "env"))
    assert weights.weights_dir(tmp_path / "arg") == tmp_path / "arg"
    assert weights.weights_dir() == tmp_path / "env"
    monkeypatch.delenv(weights.WEIGHTS_ENV)
    assert weights.weights_dir() == weights.DEFAULT_WEIGHTS_DIR


def test_auto_chooses_mediapipe_without_weights_and_says_why(tmp_path):
    name, reason = registry.choose("auto", weights_dir=tmp_path)
    assert name == "mediapipe"
    assert str(tmp_path) in reason and "weights download" in reason


def test_auto_chooses_mediapipe_when_the_nlf_files_are_not_models(full_weights):
    name, reason = registry.choose("auto", weights_dir=full_weights)
    assert name == "mediapipe" and "yolox_l.onnx" in reason and "download" in reason


def test_resolve_auto_creates_mediapipe(tmp_path):
    estimator, reason = registry.resolve("auto", weights_dir=tmp_path)
    try:
        assert estimator.name == "mediapipe" and not estimator.needs_weights
        assert estimator.device == "cpu" and "mediapipe" in estimator.version
    finally:
        estimator.close()


@pytest.mark.parametrize("name", ["auto", "mediapipe"])
def test_device_cuda_never_falls_back_to_the_cpu_estimator(tmp_path, capsys, name):
    assert not registry.availability("mediapipe", device="cuda").ok
    assert registry.availability("mediapipe", device="CPU").ok
    with pytest.raises(EstimatorError, match="CPU only.*--device cuda"):
        registry.resolve(name, weights_dir=tmp_path, device="cuda")
    from video_helpers import write_clip

    clip = write_clip(tmp_path / "clip.mp4", frames=3)
    code = main(["-q", "extract", str(clip), "-o", str(tmp_path / "p.npz"),
                 "--estimator", name, "--device", "cuda", "--weights-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--device cuda" in err[0], err
    assert not (tmp_path / "p.npz").exists()


def test_nlf_without_weights_says_how_to_get_them(tmp_path):
    with pytest.raises(WeightsMissing) as info:
        registry.create("nlf", weights_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message
    assert "scail-pose weights download" in message and "--estimator mediapipe" in message


def test_nlf_with_empty_weight_files_names_the_file_and_the_fix(full_weights):
    with pytest.raises(WeightsMissing, match="yolox_l.onnx is not the YOLOX-L .* download"):
        registry.create("nlf", weights_dir=full_weights, device="cpu")


def test_unknown_estimator_lists_the_choices():
    with pytest.raises(EstimatorError, match="auto, mediapipe, nlf"):
        registry.create("openpose")


def test_registry_imports_no_estimator_module():
    """Asking the registry for names imports no estimator (no import circle, cheap --help)."""
    import subprocess
    import sys

    code = ("import sys; from scail_backend.estimators import registry; registry.names(); "
            "print(sorted(m for m in sys.modules if m.startswith('scail_backend.estimators.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("['scail_backend.estimators.base', "
                                  "'scail_backend.estimators.registry']")


def test_every_estimator_says_whether_it_runs_here(tmp_path, full_weights):
    for name in registry.ESTIMATORS:
        state = registry.availability(name, weights_dir=tmp_path)
        assert state.name == name and state.label and state.ok == (not state.reason)
    assert registry.availability("mediapipe").ok
    missing = registry.availability("nlf", weights_dir=tmp_path)
    assert not missing.ok and str(tmp_path) in missing.reason
    assert "yolox_l.onnx" in registry.availability("nlf", weights_dir=full_weights).reason


def test_capabilities_offer_only_what_can_run_and_say_why_not(tmp_path):
    caps = registry.capabilities(weights_dir=tmp_path)
    assert caps["names"] == ["auto", "mediapipe"] and caps["auto"] == "mediapipe"
    assert caps["all"]["nlf"]["available"] is False and caps["all"]["nlf"]["reason"]
    assert caps["all"]["mediapipe"] == {"available": True, "reason": "",
                                        "label": registry.availability("mediapipe").label}


class _BrokenModels:
    """An estimator that looks able to run but whose models fail to load."""

    name, label = "broken", "Broken"

    @classmethod
    def availability(cls, *, weights_dir=None, device=None):
        return True, ""

    def __init__(self, *, weights_dir=None, device=None):
        raise EstimatorError("broken.onnx is not a model onnxruntime can load")


def test_auto_passes_over_an_estimator_whose_models_fail_to_load(monkeypatch):
    monkeypatch.setitem(registry.ESTIMATORS, "broken", (__name__, "_BrokenModels"))
    monkeypatch.setattr(registry, "AUTO_ORDER", ("broken", "mediapipe"))
    estimator, reason = registry.resolve("auto")
    try:
        assert estimator.name == "mediapipe"
        assert "not broken: broken.onnx is not a model" in reason
    finally:
        estimator.close()
    with pytest.raises(EstimatorError, match="not a model"):
        registry.resolve("broken")


def test_server_hello_estimators_come_from_the_registry():
    from scail_backend.server import capabilities

    assert capabilities.detect()["estimators"] == registry.capabilities()


# --- verify and download ----------------------------------------------------------------------


def _manifest(tmp_path, payload: bytes, *, url=None, sha256="right", size="right"):
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    entry = {"name": "model.bin", "path": "sub/model.bin", "used_by": ["nlf"],
             "url": url or source.as_uri(),
             "sha256": digest if sha256 == "right" else sha256,
             "size_bytes": len(payload) if size == "right" else size}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"schema": 1, "files": [entry]}))
    return weights.load_manifest(path)


def test_download_fetches_and_checks_sha256(tmp_path):
    manifest = _manifest(tmp_path, b"weights" * 1000)
    seen = []
    fetched = weights.download(tmp_path / "w", manifest=manifest,
                               progress=lambda name, done, total: seen.append(done))
    assert fetched == [tmp_path / "w" / "sub" / "model.bin"]
    assert fetched[0].read_bytes() == b"weights" * 1000 and seen[-1] == 7000
    assert [c.state for c in weights.verify(tmp_path / "w", manifest=manifest)] == ["ok"]
    assert weights.download(tmp_path / "w", manifest=manifest) == []  # already there


def test_download_with_wrong_checksum_leaves_nothing(tmp_path):
    manifest = _manifest(tmp_path, b"weights", sha256="0" * 64)
    with pytest.raises(WeightsMissing, match="does not match"):
        weights.download(tmp_path / "w", manifest=manifest)
    assert list((tmp_path / "w").rglob("*")) == [tmp_path / "w" / "sub"]


def test_download_from_unreachable_source_is_a_clear_error(tmp_path):
    manifest = _manifest(tmp_path, b"x", url="http://127.0.0.1:9/model.bin")
    with pytest.raises(WeightsMissing, match="cannot download model.bin .* put it at"):
        weights.download(tmp_path / "w", manifest=manifest, timeout_s=5)
    assert not (tmp_path / "w" / "sub" / "model.bin").exists()


@pytest.mark.parametrize("content, sha256, size, state", [
    (None, "right", "right", "missing"),
    (b"abc", "right", "right", "ok"),
    (b"abd", "right", "right", "hash-mismatch"),
    (b"abcd", "right", "right", "size-mismatch"),
    (b"abc", None, None, "unchecked"),
])
def test_verify_reports_each_state(tmp_path, content, sha256, size, state):
    manifest = _manifest(tmp_path, b"abc", sha256=sha256, size=size)
    if content is not None:
        (tmp_path / "w" / "sub").mkdir(parents=True)
        (tmp_path / "w" / "sub" / "model.bin").write_bytes(content)
    assert [c.state for c in weights.verify(tmp_path / "w", manifest=manifest)] == [state]


def test_cli_weights_list_and_verify(tmp_path, capsys):
    assert main(["-q", "weights", "list", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path) in out and out.count("missing") == len(weights.load_manifest())
    assert main(["-q", "weights", "verify", "--weights-dir", str(tmp_path)]) == 2
