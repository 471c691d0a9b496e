"""Loading the three nlf models, checking what each file is, and choosing where each runs.

Two levels of checking, both naming the file and the fix when something is wrong:

* :func:`inspect_weights` — cheap (no torch, no onnxruntime; cached per file size and time):
  each ONNX graph's inputs and outputs (names, element types, ranks, fixed sizes) and that the
  TorchScript archive holds a ``detect_smpl_batched`` method. Used by ``availability``.
* :func:`load_models` — the real thing: onnxruntime sessions (the same checks on what the session
  reports) and ``torch.jit.load`` (the method must exist and take ``images``).
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from scail_protocol.errors import EstimatorError, WeightsMissing

from ... import weights

log = logging.getLogger(__name__)

YOLOX_FILE = "yolox_l.onnx"
DWPOSE_FILE = "dw-ll_ucoco_384.onnx"
NLF_FILE = "nlf_l_multi_0.3.2.torchscript"
NLF_METHOD = "detect_smpl_batched"
DEVICES = ("auto", "cuda", "cpu")


class WeightsInvalid(WeightsMissing):
    """A weight file is there but is not what the estimator needs (wrong model, truncated)."""


@dataclass(frozen=True)
class TensorSpec:
    """Expected name, element type, and sizes (None = any) of one model input or output."""

    name: str
    dims: Tuple[Optional[int], ...]
    elem: str = "float"


@dataclass(frozen=True)
class OnnxSpec:
    """What an ONNX weight file must look like (docs/pipeline.md §2.1, §2.2)."""

    file: str
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    role: str


YOLOX = OnnxSpec(YOLOX_FILE, (TensorSpec("images", (None, 3, 640, 640)),),
                 (TensorSpec("output", (None, None, 85)),), "YOLOX-L person detector")
DWPOSE = OnnxSpec(DWPOSE_FILE, (TensorSpec("input", (None, 3, 384, 288)),),
                  (TensorSpec("simcc_x", (None, 133, 576)), TensorSpec("simcc_y", (None, 133, 768))),
                  "DWPose-L whole-body keypoints")


@dataclass(frozen=True)
class Tensor:
    """A tensor as a model file or session describes it: sizes are int, or None when symbolic."""

    name: str
    elem: str
    dims: Tuple[Optional[int], ...]


def _fix_hint(file: str) -> str:
    url = next((f.url for f in weights.load_manifest() if f.name == file), None)
    where = f" from {url}" if url else ""
    return f"download the reference file again{where} (`scail-pose weights download` after " \
           f"deleting it), or use --estimator mediapipe"


def check_io(spec: OnnxSpec, path: Path, inputs: List[Tensor], outputs: List[Tensor]) -> int:
    """Compare a model's inputs and outputs with ``spec``.

    Returns:
        The fixed batch size of the input (0 when it is symbolic, i.e. any batch works).

    Raises:
        WeightsInvalid: naming the file, what was expected, what it has, and the fix.
    """
    def fail(what: str):
        raise WeightsInvalid(f"{path} is not the {spec.role} the nlf estimator needs: {what}; "
                             f"{_fix_hint(spec.file)}")

    def describe(ts: List[Tensor]) -> str:
        return ", ".join(f"{t.name} {t.elem}{list(t.dims)}" for t in ts) or "none"

    if len(inputs) != len(spec.inputs):
        fail(f"expected {len(spec.inputs)} input ({spec.inputs[0].name}), found "
             f"{describe(inputs)}")
    for want, kind, found in [(s, "input", inputs) for s in spec.inputs] + \
                             [(s, "output", outputs) for s in spec.outputs]:
        match = next((t for t in found if t.name == want.name), None)
        if match is None:
            fail(f"no {kind} named {want.name!r} (its {kind}s: {describe(found)})")
        if match.elem != want.elem:
            fail(f"{kind} {want.name!r} is {match.elem}, expected {want.elem}")
        if len(match.dims) != len(want.dims):
            fail(f"{kind} {want.name!r} has rank {len(match.dims)}, expected {len(want.dims)}")
        for axis, (have, need) in enumerate(zip(match.dims, want.dims)):
            if need is not None and have is not None and have != need:
                fail(f"{kind} {want.name!r} has size {have} on axis {axis}, expected {need} "
                     f"(shape {list(match.dims)})")
    batch = inputs[0].dims[0]
    return int(batch) if batch is not None else 0


# --- cheap inspection (no torch, no onnxruntime) --------------------------------------------------

_ELEM_NAMES = {1: "float", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16",
               11: "double", 16: "bfloat16"}
_inspect_cache: Dict[Tuple[str, int, int], Optional[str]] = {}


def _onnx_tensors(values, skip=()) -> List[Tensor]:
    out = []
    for v in values:
        if v.name in skip:
            continue
        t = v.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                     for d in t.shape.dim)
        out.append(Tensor(v.name, _ELEM_NAMES.get(t.elem_type, f"type{t.elem_type}"), dims))
    return out


def inspect_onnx(spec: OnnxSpec, path: Path) -> int:
    """Check an ONNX file's graph inputs/outputs without onnxruntime (parses the protobuf with
    the ``onnx`` package; without it, nothing is checked here).

    Returns:
        The fixed input batch size (0 = any). Raises WeightsInvalid.
    """
    try:
        import onnx
    except ImportError:  # the full check runs when onnxruntime loads the file
        log.debug("onnx is not installed: %s is checked when it is loaded", path)
        return 0
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends: truncated or not ONNX
        raise WeightsInvalid(f"{path} cannot be read as ONNX ({type(e).__name__}: "
                             f"{str(e)[:120] or 'truncated or damaged'}); "
                             f"{_fix_hint(spec.file)}") from None
    initializers = {i.name for i in model.graph.initializer}
    return check_io(spec, path, _onnx_tensors(model.graph.input, initializers),
                    _onnx_tensors(model.graph.output))


def inspect_torchscript(path: Path) -> None:
    """Check that a file is a TorchScript archive with a ``detect_smpl_batched`` method.

    Reads the archive's directory and its code files only (no torch import). Raises WeightsInvalid.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            code = [n for n in archive.namelist() if "/code/" in n and n.endswith(".py")]
            found = any(f"def {NLF_METHOD}(".encode() in archive.read(n) for n in code)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise WeightsInvalid(f"{path} is not a readable TorchScript archive ({e}); it may be "
                             f"truncated: {_fix_hint(NLF_FILE)}") from None
    if not code:
        raise WeightsInvalid(f"{path} is not a TorchScript archive (no code/ inside); "
                             f"{_fix_hint(NLF_FILE)}")
    if not found:
        raise WeightsInvalid(f"{path} has no {NLF_METHOD} method; the nlf estimator needs NLF's "
                             f"multi-person TorchScript export: {_fix_hint(NLF_FILE)}")


def weight_paths(weights_dir=None) -> Dict[str, Path]:
    """Manifest name -> path in the weights folder, for the three nlf files.

    Raises:
        WeightsMissing: any is absent (naming the folder, the files and the fix).
    """
    state = weights.status(weights_dir, used_by="nlf")
    if not state.complete:
        raise WeightsMissing(f"nlf weights not found at {state.directory} (missing "
                             f"{', '.join(state.missing)}); run `scail-pose weights download` or "
                             f"use `--estimator mediapipe`")
    by_name = {f.name: f for f in weights.load_manifest() if "nlf" in f.used_by}
    return {name: state.directory / by_name[name].path for name in (YOLOX_FILE, DWPOSE_FILE,
                                                                    NLF_FILE)}


def inspect_weights(weights_dir=None) -> Dict[str, Path]:
    """Cheap check of the three files (presence, ONNX I/O, TorchScript method); cached per file.

    Returns:
        name -> path. Raises WeightsMissing / WeightsInvalid.
    """
    paths = weight_paths(weights_dir)
    checks = {YOLOX_FILE: lambda p: inspect_onnx(YOLOX, p),
              DWPOSE_FILE: lambda p: inspect_onnx(DWPOSE, p), NLF_FILE: inspect_torchscript}
    for name, path in paths.items():
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if key not in _inspect_cache:
            try:
                checks[name](path)
                _inspect_cache[key] = None
            except WeightsMissing as e:
                _inspect_cache[key] = str(e)
        if _inspect_cache[key] is not None:
            raise WeightsInvalid(_inspect_cache[key])
    return paths


def warn_if_not_published(paths: Dict[str, Path]) -> List[str]:
    """One warning line per file whose size or sha256 is not the manifest's (used anyway).

    Size is compared first; the sha256 is computed only when the size matches and a checksum is
    recorded. Returns the warnings (also logged).
    """
    manifest = {f.name: f for f in weights.load_manifest()}
    notes = []
    for name, path in paths.items():
        entry = manifest.get(name)
        if entry is None:
            continue
        size = path.stat().st_size
        why = None
        if entry.size_bytes is not None and size != entry.size_bytes:
            why = f"{size} bytes, published {entry.size_bytes}"
        elif entry.sha256:
            digest = _sha256_cached(path)
            if digest != entry.sha256.lower():
                why = f"sha256 {digest[:12]}..., published {entry.sha256[:12]}..."
        if why:
            notes.append(f"{path} is not the published {name} ({why}); using it as given "
                         f"(a fine-tuned or smaller variant?); `scail-pose weights verify` "
                         f"lists such files")
    for note in notes:
        log.warning("%s", note)
    return notes


_sha256_cache: Dict[Tuple[str, int, int], str] = {}


def _sha256_cached(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the life of the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _sha256_cache:
        _sha256_cache[key] = weights.sha256_of(path)
    return _sha256_cache[key]


# --- devices -------------------------------------------------------------------------------------

@dataclass
class Devices:
    """Where each model runs: "cuda" / "cpu" for the ONNX models, a torch device for NLF."""

    onnx_providers: List[str]
    torch_device: str
    notes: List[str] = field(default_factory=list)


def choose_devices(device: Optional[str]) -> Devices:
    """Resolve ``auto`` / ``cuda`` / ``cpu`` into onnxruntime providers and a torch device.

    auto: CUDA for each library that can use it, else CPU. cuda: both must have CUDA.

    Raises:
        EstimatorError: an unknown device, or ``cuda`` where onnxruntime or torch has no CUDA
            (the message says which and how to install the GPU builds).
    """
    device = (device or "auto").lower()
    if device not in DEVICES:
        raise EstimatorError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    ort, torch = _import_runtimes()
    ort_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    torch_cuda = bool(torch.cuda.is_available())
    if device == "cuda":
        missing = [name for name, ok in (("onnxruntime", ort_cuda), ("torch", torch_cuda))
                   if not ok]
        if missing:
            raise EstimatorError(
                f"--device cuda: no CUDA for {' and '.join(missing)} here (onnxruntime providers: "
                f"{', '.join(ort.get_available_providers())}; torch {torch.__version__}, "
                f"cuda available: {torch_cuda}); install the GPU builds (README: GPU install) "
                f"or use --device cpu")
    use_cuda = device != "cpu"
    providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda and ort_cuda
                 else ["CPUExecutionProvider"])
    torch_device = "cuda:0" if use_cuda and torch_cuda else "cpu"
    return Devices(providers, torch_device)


def planned_devices(device: Optional[str] = None) -> Dict[str, str]:
    """Where each model would run, without loading any: e.g. {"yolox": "cuda", "dwpose":
    "cuda", "nlf": "cuda:0"}. Imports onnxruntime and torch. Raises EstimatorError."""
    devices = choose_devices(device)
    onnx_device = "cuda" if devices.onnx_providers[0] == "CUDAExecutionProvider" else "cpu"
    return {"yolox": onnx_device, "dwpose": onnx_device, "nlf": devices.torch_device}


def _import_runtimes():
    try:
        import onnxruntime as ort
        import torch
    except ImportError as e:
        raise EstimatorError(f"the nlf estimator needs onnxruntime and torch ({e}); install them "
                             f"with pip install -e '.[nlf]' (CPU) or see the README's GPU "
                             f"install") from None
    return ort, torch


# --- real loading ----------------------------------------------------------------------------------

@dataclass
class OnnxModel:
    """An onnxruntime session with what the estimator needs to know about it.

    Attributes:
        session: the InferenceSession.
        input_name: its input's name.
        batch: fixed batch size of the input, 0 when any batch works.
        device: "cuda" or "cpu" (what the session actually uses).
        path: the file.
    """

    session: object
    input_name: str
    batch: int
    device: str
    path: Path

    def run(self, batch, output_names):
        return self.session.run(output_names, {self.input_name: batch})


def _ort_tensors(values) -> List[Tensor]:
    out = []
    for v in values:
        elem = v.type[len("tensor("):-1] if v.type.startswith("tensor(") else v.type
        dims = tuple(d if isinstance(d, int) and d > 0 else None for d in v.shape)
        out.append(Tensor(v.name, elem, dims))
    return out


def load_onnx(spec: OnnxSpec, path: Path, providers: List[str], strict_cuda: bool) -> OnnxModel:
    """An onnxruntime session for ``path``, checked against ``spec``.

    Raises:
        WeightsInvalid: the file does not load or has the wrong inputs/outputs.
        EstimatorError: ``strict_cuda`` and the session fell back to the CPU.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if providers[0] == "CPUExecutionProvider":  # idle threads must not spin: the calling
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # thread
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")  # works too
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types
        raise WeightsInvalid(f"{path} cannot be loaded by onnxruntime ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160] if str(e) else 'no detail'}); "
                             f"{_fix_hint(spec.file)}") from None
    batch = check_io(spec, path, _ort_tensors(session.get_inputs()),
                     _ort_tensors(session.get_outputs()))
    used = session.get_providers()
    device = "cuda" if used and used[0] == "CUDAExecutionProvider" else "cpu"
    if strict_cuda and device != "cuda":
        raise EstimatorError(f"--device cuda: onnxruntime could not start CUDA for {path.name} "
                             f"(providers in use: {', '.join(used)}); check the CUDA/cuDNN "
                             f"install or use --device cpu")
    return OnnxModel(session, session.get_inputs()[0].name, batch, device, path)


def load_torchscript(path: Path, device: str):
    """``torch.jit.load`` the NLF model onto ``device``, eval mode, method checked.

    Raises:
        WeightsInvalid: not loadable, no ``detect_smpl_batched``, or it takes no ``images``.
    """
    import torch

    try:
        model = torch.jit.load(str(path), map_location=device)
    except Exception as e:  # RuntimeError / ValueError from the archive reader
        raise WeightsInvalid(f"{path} cannot be loaded by torch.jit.load ({type(e).__name__}: "
                             f"{str(e).splitlines()[0][:160] if str(e) else 'no detail'}); "
                             f"{_fix_hint(NLF_FILE)}") from None
    method = getattr(model, NLF_METHOD, None)
    if method is None:
        raise WeightsInvalid(f"{path} has no {NLF_METHOD} method; the nlf estimator needs NLF's "
                             f"multi-person TorchScript export: {_fix_hint(NLF_FILE)}")
    arguments = [a.name for a in method.schema.arguments]
    if "images" not in arguments[:2]:
        raise WeightsInvalid(f"{path}: {NLF_METHOD} takes {arguments[1:]}, expected 'images' "
                             f"first; {_fix_hint(NLF_FILE)}")
    model.eval()
    return model, "intrinsic_matrix" in arguments


@dataclass
class Models:
    """The three loaded models and where they run."""

    yolox: OnnxModel
    dwpose: OnnxModel
    nlf: object
    nlf_takes_intrinsics: bool
    nlf_device: str
    paths: Dict[str, Path]

    def describe_devices(self) -> Dict[str, str]:
        """Model -> device, e.g. {"yolox": "cuda", "dwpose": "cuda", "nlf": "cuda:0"}."""
        return {"yolox": self.yolox.device, "dwpose": self.dwpose.device, "nlf": self.nlf_device}


def load_models(weights_dir=None, device: Optional[str] = None) -> Models:
    """Load and check the three models on the chosen device(s).

    Raises:
        WeightsMissing / WeightsInvalid: a file is absent or wrong (message names file and fix).
        EstimatorError: the device cannot be used, or onnxruntime/torch are not installed.
    """
    devices = choose_devices(device)  # before touching the files: a wrong device fails first
    paths = inspect_weights(weights_dir)
    strict = (device or "auto").lower() == "cuda"
    yolox = load_onnx(YOLOX, paths[YOLOX_FILE], devices.onnx_providers, strict)
    dwpose = load_onnx(DWPOSE, paths[DWPOSE_FILE], devices.onnx_providers, strict)
    nlf, takes_k = load_torchscript(paths[NLF_FILE], devices.torch_device)
    warn_if_not_published(paths)
    return Models(yolox, dwpose, nlf, takes_k, devices.torch_device, paths)
