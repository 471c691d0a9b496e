"""Tiny stand-ins for the nlf estimator's three weight files, and a scene they understand.

They have the real files' interfaces — YOLOX-L's ``images`` -> ``output`` (N, 8400, 85),
DWPose-L's ``input`` (N, 3, 384, 288) -> ``simcc_x`` (N, 133, 576) / ``simcc_y`` (N, 133, 768),
NLF's TorchScript ``detect_smpl_batched`` returning ``joints3d_nonparam`` in millimetres — and
outputs computed from the pixels they are given, with the reference's pre-processing built into
what they look for:

* the detector finds people by colour in *raw BGR* 0-255 values (A: red < 25 and blue > 100;
  B: red in (30, 55)) (an RGB, normalised or
  misplaced letterbox finds nothing or a shifted box) and only scores them when the canvas
  padding is 114;
* the keypoint model finds a feature whose blue value maps into (1.0, 1.5) only under the
  reference's normalisation *quirk* (ImageNet RGB constants on BGR data); a decoy of another blue
  value is what a correct-RGB normalisation would find instead; keypoints are fixed offsets (in
  input pixels) from the feature, so a wrong crop scale or centre moves them;
* the NLF model takes the bounding box of the green pixels of the *RGB* uint8 image and lifts a
  fixed 24-joint template onto it at a depth that makes a 1700 mm person that tall; a distractor
  bar just beside person A lies inside A's masked window only with the reference's margins.

The expected values follow from the scene's rectangles and the reference's formulas (helpers
below), never from the code under test.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

SIZE = (512, 896)                  # H, W of the test frames
A = (200, 100, 320, 400)           # person A, x0 y0 x1 y1 end-exclusive (pixels)
A_FEATURE = (240, 200, 280, 260)
A_DECOY = (215, 320, 305, 370)
BAR = (325, 150, 335, 350)         # green, invisible to the detector, inside A's NLF window
B = (560, 150, 660, 420)           # person B
B_FEATURE = (590, 250, 630, 300)
RGB_A = (10, 230, 150)
RGB_FEATURE_A = (10, 230, 200)     # blue 200 -> (200 - 123.675) / 58.395 = 1.307
RGB_DECOY = (10, 230, 170)         # blue 170 -> 1.158 only under RGB-correct normalisation
RGB_BAR = (10, 230, 95)
RGB_B = (40, 230, 60)
RGB_FEATURE_B = (40, 230, 200)
RGB_HIDDEN_FEATURE = (27, 230, 200)  # DWPose's feature, but red 27 is neither detector colour
SCORE_A, SCORE_B = 0.9, 0.8        # detector scores
PERSON_MM = 1700.0                 # the tiny NLF's person height
K_DET = 133
# keypoint k = feature centroid + (DX[k], DY[k]) input pixels, score S[k]
DX = np.array([((k * 37) % 81) - 40 for k in range(K_DET)], np.float32)
DY = np.array([((k * 53) % 121) - 60 for k in range(K_DET)], np.float32)
S = np.array([0.2 + 0.75 * ((k * 29) % 100) / 99 for k in range(K_DET)], np.float32)
SIGMA_BINS = 1.5
# the tiny NLF's joint template: fractions (u, v) of its box for the 24 SMPL joints
TEMPLATE = np.array([[0.5, 0.55], [0.6, 0.56], [0.4, 0.56], [0.5, 0.45], [0.62, 0.75],
                     [0.38, 0.75], [0.5, 0.35], [0.63, 0.95], [0.37, 0.95], [0.5, 0.27],
                     [0.64, 0.99], [0.36, 0.99], [0.5, 0.17], [0.56, 0.2], [0.44, 0.2],
                     [0.5, 0.08], [0.7, 0.21], [0.3, 0.21], [0.82, 0.35], [0.18, 0.35],
                     [0.9, 0.48], [0.1, 0.48], [0.93, 0.52], [0.07, 0.52]], np.float32)


# --- the scene -------------------------------------------------------------------------------------

def _fill(frame, rect, rgb):
    x0, y0, x1, y1 = rect
    frame[y0:y1, x0:x1] = rgb


def scene(people=("A", "B"), size=SIZE, bar: bool = True, feature_only: bool = False) -> np.ndarray:
    """An (H, W, 3) uint8 RGB frame with the chosen people on black."""
    frame = np.zeros(tuple(size) + (3,), np.uint8)
    if "A" in people:
        if not feature_only:
            _fill(frame, A, RGB_A)
            _fill(frame, A_DECOY, RGB_DECOY)
        _fill(frame, A_FEATURE, RGB_HIDDEN_FEATURE if feature_only else RGB_FEATURE_A)
        if bar and not feature_only:
            _fill(frame, BAR, RGB_BAR)
    if "B" in people:
        _fill(frame, B, RGB_B)
        _fill(frame, B_FEATURE, RGB_FEATURE_B)
    return frame


def centroid(rect):
    """Centroid of a rectangle's pixel centres."""
    x0, y0, x1, y1 = rect
    return np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])


def expected_keypoints(person_rect, feature_rect):
    """(133, 2) frame pixels and (133,) scores the tiny DWPose gives for a detected person.

    docs/pipeline.md §2.2: crop scale = box size x 1.25, short side enlarged to 3:4; input pixels
    map back with scale_w / 288.
    """
    x0, y0, x1, y1 = person_rect
    w, h = (x1 - x0) * 1.25, (y1 - y0) * 1.25
    w, h = (w, w / 0.75) if w > 0.75 * h else (0.75 * h, h)
    per_input_px = w / 288.0
    points = centroid(feature_rect)[None] + np.stack([DX, DY], 1) * per_input_px
    return points, S


def expected_joints(rect_px, size=SIZE, K: Optional[np.ndarray] = None):
    """(24, 3) mm the tiny NLF gives for a green bounding box (x0 y0 x1 y1, end-exclusive)."""
    height, width = size
    if K is None:
        f = max(height, width) / (2 * math.tan(math.radians(55.0) / 2))
        K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    x0, y0, x1, y1 = rect_px
    z = K[1, 1] * PERSON_MM / (y1 - y0)
    u = x0 + TEMPLATE[:, 0] * (x1 - x0)
    v = y0 + TEMPLATE[:, 1] * (y1 - y0)
    return np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1],
                     np.full(24, z)], axis=1)


# --- ONNX models -----------------------------------------------------------------------------------

def _onnx():
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    return onnx, TensorProto, helper, numpy_helper


class _Graph:
    """A small builder over onnx.helper: constants and nodes with generated names."""

    def __init__(self):
        self.onnx, self.TP, self.h, self.nh = _onnx()
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, prefix="t"):
        self.n += 1
        return f"{prefix}{self.n}"

    def const(self, value, dtype=np.float32):
        name = self.name("c")
        self.inits.append(self.nh.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type, *inputs, **attrs):
        out = self.name()
        self.nodes.append(self.h.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def reduce(self, op_type, x, axes=(1, 2, 3)):
        """Reduce over ``axes`` without keeping them (opset 17: ReduceSum takes axes as input)."""
        if op_type == "ReduceSum":
            return self.op(op_type, x, self.const(list(axes), np.int64), keepdims=0)
        return self.op(op_type, x, axes=list(axes), keepdims=0)

    def channel(self, x, c):
        return self.op("Slice", x, self.const([c], np.int64), self.const([c + 1], np.int64),
                       self.const([1], np.int64))

    def mask(self, *conditions):
        out = conditions[0]
        for c in conditions[1:]:
            out = self.op("And", out, c)
        return self.op("Cast", out, to=self.TP.FLOAT)

    def save(self, path, inputs, outputs, outputs_rename):
        for internal, final in outputs_rename.items():
            self.nodes.append(self.h.make_node("Identity", [internal], [final]))
        graph = self.h.make_graph(self.nodes, "tiny", inputs, outputs, self.inits)
        model = self.h.make_model(graph, opset_imports=[self.h.make_opsetid("", 17)],
                                  producer_name="scail-tests")
        model.ir_version = 8
        self.onnx.checker.check_model(model)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.onnx.save(model, str(path))
        return Path(path)


def _box_of(g: _Graph, m, xs, ys):
    """(N, 1) x1, y1, x2, y2 (end-exclusive) and count of a (N, 1, H, W) float mask."""
    big = g.const(1e4)
    inv = g.op("Sub", g.const(1.0), m)
    x2 = g.op("Add", g.reduce("ReduceMax", g.op("Mul", m, xs)), g.const(1.0))
    y2 = g.op("Add", g.reduce("ReduceMax", g.op("Mul", m, ys)), g.const(1.0))
    x1 = g.reduce("ReduceMin", g.op("Add", g.op("Mul", m, xs), g.op("Mul", inv, big)))
    y1 = g.reduce("ReduceMin", g.op("Add", g.op("Mul", m, ys), g.op("Mul", inv, big)))
    count = g.reduce("ReduceSum", m)
    shape = g.const([-1, 1], np.int64)
    return [g.op("Reshape", v, shape) for v in (x1, y1, x2, y2, count)]


def write_yolox(path, batch: Optional[int] = 1, input_name="images", output_name="output",
                output_rank3: bool = True) -> Path:
    """A tiny YOLOX-L stand-in: input ``images`` (batch, 3, 640, 640) float32 raw BGR, output
    ``output`` (batch, 8400, 85). ``batch=None`` makes the batch size symbolic."""
    g = _Graph()
    x = input_name
    c0, c1, c2 = (g.channel(x, c) for c in range(3))
    green = g.op("Greater", c1, g.const(200.0))
    mask_a = g.mask(green, g.op("Less", c2, g.const(25.0)), g.op("Greater", c0, g.const(100.0)))
    mask_b = g.mask(green, g.op("Greater", c2, g.const(30.0)), g.op("Less", c2, g.const(55.0)))
    xs = g.const(np.arange(640, dtype=np.float32).reshape(1, 1, 1, 640))
    ys = g.const(np.arange(640, dtype=np.float32).reshape(1, 1, 640, 1))
    corner = g.op("Slice", c0, g.const([639, 0], np.int64), g.const([640, 1], np.int64),
                  g.const([2, 3], np.int64))                          # (N, 1, 1, 1)
    pad_ok = g.op("Reshape", g.op("Cast", g.op("Equal", corner, g.const(114.0)), to=g.TP.FLOAT),
                  g.const([-1, 1], np.int64))
    classes = np.zeros((1, 80), np.float32)
    classes[0, 0], classes[0, 1] = 1.0, 0.3

    def row(box, conf, anchor, shift=0.0):
        x1, y1, x2, y2, count = box
        stride, gx, gy = anchor
        s, sh = g.const(float(stride)), g.const(float(shift))
        cx = g.op("Add", g.op("Div", g.op("Add", x1, x2), g.const(2.0)), sh)
        cy = g.op("Add", g.op("Div", g.op("Add", y1, y2), g.const(2.0)), sh)
        w = g.op("Max", g.op("Sub", x2, x1), g.const(1.0))
        h = g.op("Max", g.op("Sub", y2, y1), g.const(1.0))
        rx = g.op("Sub", g.op("Div", cx, s), g.const(float(gx)))
        ry = g.op("Sub", g.op("Div", cy, s), g.const(float(gy)))
        rw, rh = g.op("Log", g.op("Div", w, s)), g.op("Log", g.op("Div", h, s))
        found = g.op("Cast", g.op("Greater", count, g.const(0.0)), to=g.TP.FLOAT)
        obj = g.op("Mul", g.op("Mul", found, pad_ok), g.const(float(conf)))
        cls = g.op("Mul", g.op("Add", g.op("Mul", rx, g.const(0.0)), g.const(1.0)),
                   g.const(classes))
        return g.op("Unsqueeze", g.op("Concat", rx, ry, rw, rh, obj, cls, axis=1),
                    g.const([1], np.int64))                            # (N, 1, 85)

    def anchor_index(stride, gx, gy):
        offset = {8: 0, 16: 6400, 32: 8000}[stride]
        return offset + gy * (640 // stride) + gx

    box_a = _box_of(g, mask_a, xs, ys)
    box_b = _box_of(g, mask_b, xs, ys)
    rows = [(row(box_a, SCORE_A, (16, 1, 1)), (16, 1, 1)),
            (row(box_b, SCORE_B, (32, 3, 2)), (32, 3, 2)),
            (row(box_a, 0.7, (8, 0, 0), shift=3.0), (8, 0, 0)),        # NMS suppresses it
            (row(box_b, 0.2, (8, 1, 0), shift=150.0), (8, 1, 0))]      # below 0.3
    total = None
    for r, anchor in rows:
        onehot = np.zeros((1, 8400, 1), np.float32)
        onehot[0, anchor_index(*anchor), 0] = 1.0
        term = g.op("Mul", g.const(onehot), r)
        total = term if total is None else g.op("Add", total, term)
    if not output_rank3:
        total = g.op("Reshape", total, g.const([-1, 8400 * 85], np.int64))
    h, TP = g.h, g.TP
    b = batch if batch is not None else "N"
    inp = h.make_tensor_value_info(input_name, TP.FLOAT, [b, 3, 640, 640])
    out_shape = [b, 8400, 85] if output_rank3 else [b, 8400 * 85]
    out = h.make_tensor_value_info(output_name, TP.FLOAT, out_shape)
    return g.save(path, [inp], [out], {total: output_name})


def write_dwpose(path, batch: Optional[int] = 1, input_hw=(384, 288)) -> Path:
    """A tiny DWPose-L stand-in: ``input`` (batch, 3, 384, 288) float32 (normalised BGR) ->
    ``simcc_x`` (batch, 133, 576), ``simcc_y`` (batch, 133, 768)."""
    g = _Graph()
    H, W = input_hw
    c0 = g.channel("input", 0)
    m = g.mask(g.op("Greater", c0, g.const(1.0)), g.op("Less", c0, g.const(1.5)))
    xs = g.const(np.arange(W, dtype=np.float32).reshape(1, 1, 1, W))
    ys = g.const(np.arange(H, dtype=np.float32).reshape(1, 1, H, 1))
    count = g.reduce("ReduceSum", m)
    denom = g.op("Max", count, g.const(1.0))
    shape = g.const([-1, 1, 1], np.int64)
    cx = g.op("Reshape", g.op("Div", g.reduce("ReduceSum", g.op("Mul", m, xs)), denom), shape)
    cy = g.op("Reshape", g.op("Div", g.reduce("ReduceSum", g.op("Mul", m, ys)), denom), shape)
    present = g.op("Reshape", g.op("Cast", g.op("Greater", count, g.const(0.0)), to=g.TP.FLOAT),
                   shape)
    score = g.op("Mul", present, g.const(S.reshape(1, K_DET, 1)))

    def simcc(centre, offsets, bins):
        mu = g.op("Mul", g.op("Add", centre, g.const(offsets.reshape(1, K_DET, 1))), g.const(2.0))
        pos = g.const(np.arange(bins, dtype=np.float32).reshape(1, 1, bins))
        d = g.op("Sub", pos, mu)
        e = g.op("Exp", g.op("Mul", g.op("Mul", d, d), g.const(-1.0 / (2 * SIGMA_BINS ** 2))))
        return g.op("Mul", e, score)

    sx, sy = simcc(cx, DX, 2 * W), simcc(cy, DY, 2 * H)
    h, TP = g.h, g.TP
    b = batch if batch is not None else "N"
    inp = h.make_tensor_value_info("input", TP.FLOAT, [b, 3, H, W])
    outs = [h.make_tensor_value_info("simcc_x", TP.FLOAT, [b, K_DET, 2 * W]),
            h.make_tensor_value_info("simcc_y", TP.FLOAT, [b, K_DET, 2 * H])]
    return g.save(path, [inp], outs, {sx: "simcc_x", sy: "simcc_y"})


# --- TorchScript NLF ---------------------------------------------------------------------------------

def _tiny_nlf_class():
    import torch

    class TinyNLF(torch.nn.Module):
        """NLF's detect_smpl_batched signature; one 'person' = the green pixels' bounding box."""

        def __init__(self, max_batch: int, joints_key: str):
            super().__init__()
            self.max_batch = max_batch
            self.joints_key = joints_key
            self.register_buffer("template", torch.tensor(TEMPLATE))

        @torch.jit.export
        def detect_smpl_batched(
                self, images: torch.Tensor, intrinsic_matrix: Optional[torch.Tensor] = None,
                distortion_coeffs: Optional[torch.Tensor] = None,
                extrinsic_matrix: Optional[torch.Tensor] = None,
                world_up_vector: Optional[torch.Tensor] = None,
                default_fov_degrees: float = 55.0, internal_batch_size: int = 64,
                antialias_factor: int = 1, num_aug: int = 1, rot_aug_max_degrees: float = 25.0,
                detector_threshold: float = 0.3, detector_nms_iou_threshold: float = 0.7,
                max_detections: int = 150, suppress_implausible_poses: bool = True,
                beta_regularizer: float = 10.0, beta_regularizer2: float = 0.0,
                model_name: str = "smpl") -> Dict[str, List[torch.Tensor]]:
            if self.max_batch > 0 and images.shape[0] > self.max_batch:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB "
                                   "(tiny test model limit)")
            height, width = images.shape[2], images.shape[3]
            if intrinsic_matrix is None:
                f = float(max(height, width)) / (2.0 * math.tan(default_fov_degrees
                                                                 * math.pi / 360.0))
                K = torch.tensor([[f, 0.0, width / 2.0], [0.0, f, height / 2.0],
                                  [0.0, 0.0, 1.0]])
            else:
                K = intrinsic_matrix[0].to(torch.float32).cpu()
            mask = (images[:, 0] < 60) & (images[:, 1] > 200)          # RGB
            joints: List[torch.Tensor] = []
            boxes: List[torch.Tensor] = []
            for b in range(images.shape[0]):
                rows = torch.nonzero(mask[b].any(dim=1)).flatten()
                cols = torch.nonzero(mask[b].any(dim=0)).flatten()
                if rows.numel() == 0:
                    joints.append(torch.zeros((0, 24, 3), device=images.device))
                    boxes.append(torch.zeros((0, 5), device=images.device))
                    continue
                y0, y1 = float(rows[0]), float(rows[-1]) + 1.0
                x0, x1 = float(cols[0]), float(cols[-1]) + 1.0
                z = K[1, 1] * 1700.0 / (y1 - y0)
                u = x0 + self.template[:, 0] * (x1 - x0)
                v = y0 + self.template[:, 1] * (y1 - y0)
                xyz = torch.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1],
                                   torch.ones_like(u) * z], dim=1)
                joints.append(xyz.unsqueeze(0))
                boxes.append(torch.tensor([[x0, y0, x1 - x0, y1 - y0, 1.0]],
                                          device=images.device))
            out: Dict[str, List[torch.Tensor]] = {"boxes": boxes}
            out[self.joints_key] = joints
            out["joints3d"] = joints
            return out

    return TinyNLF


def write_nlf(path, max_batch: int = 0, joints_key: str = "joints3d_nonparam") -> Path:
    """A tiny NLF TorchScript with ``detect_smpl_batched``; ``max_batch`` > 0 makes bigger
    batches fail with a CUDA out-of-memory message (to test the halving)."""
    import torch

    module = torch.jit.script(_tiny_nlf_class()(max_batch, joints_key))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(module, str(path))
    return Path(path)


def write_scripted_without_method(path) -> Path:
    """A TorchScript file with only ``forward`` (not NLF)."""
    import torch

    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    torch.jit.save(torch.jit.script(Plain()), str(path))
    return Path(path)


def write_weights(folder, yolox_batch: Optional[int] = 1, dwpose_batch: Optional[int] = 1,
                  nlf_max_batch: int = 0) -> Path:
    """A weights folder in the reference layout holding the three tiny models."""
    folder = Path(folder)
    write_yolox(folder / "DWPose" / "yolox_l.onnx", batch=yolox_batch)
    write_dwpose(folder / "DWPose" / "dw-ll_ucoco_384.onnx", batch=dwpose_batch)
    write_nlf(folder / "nlf_l_multi_0.3.2.torchscript", max_batch=nlf_max_batch)
    return folder
