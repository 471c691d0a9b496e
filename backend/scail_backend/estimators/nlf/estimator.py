"""The ``nlf`` estimator: YOLOX-L boxes, DWPose-L whole-body 2D and NLF-L 3D (docs/pipeline.md
§2-3).

Frames stream in one at a time and are processed in small groups: letterbox and detection
(batched when the detector's input allows it), DWPose on the chosen boxes (batched likewise),
then each box's masked full-frame image is copied into a batch buffer. A full buffer goes to NLF
on a worker thread while the calling thread carries on with the next frames; two buffers
alternate, so memory stays bounded (two batches of masked images, plus a few kilobytes of results
per frame) whatever the clip length.

People: ``people="all"`` (default) keeps every detected person for the tracking stage;
``people="first"`` is the reference's selection (§3.5): per frame the
highest-scoring detector box, its DWPose keypoints and NLF's first detection inside its masked
image. With "all" the people of a frame are in detector-score order (no identity across frames:
tracking is a later stage, and ``--max-people 1`` keeps the most prominent). A frame without a detected person is
missing (NaN), and so is a box in which NLF finds nobody (the reference substitutes zeros).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import time
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

import numpy as np

from scail_protocol.camera import intrinsics_from_fov
from scail_protocol.errors import EstimatorError
from scail_protocol.sequence import PoseSequence

from ...progress import ProgressFn, no_progress
from ..base import ESTIMATE_STAGE, Estimator
from . import detector, models, nlf3d, wholebody

log = logging.getLogger(__name__)

NAME = "nlf"
PEOPLE_MODES = ("first", "all")
FRAMES_PER_STEP = 8        # frames letterboxed/detected/cropped together
MAX_CROPS_PER_RUN = 32     # DWPose images per onnxruntime call when its batch is free


@dataclass
class _Frame:
    """Per-frame results while the clip streams (pixels; NaN = missing)."""

    boxes: np.ndarray                  # (n, 4) float32; NaN rows for a whole-image fallback
    kp: np.ndarray                     # (n, 134, 2) float32
    score: np.ndarray                  # (n, 134) float32
    joints: np.ndarray                 # (n, 24, 3) float32, filled when NLF returns


class Timings(collections.defaultdict):
    """Wall seconds spent per stage (letterbox, yolox, decode, crop, dwpose, simcc, mask, nlf,
    assemble), summed over a run, and in ``cpu`` the CPU seconds of the thread that ran it
    (what a stage costs on a machine shared with other work); read by ``bench/nlf_pipeline.py``."""

    def __init__(self):
        super().__init__(float)
        self.cpu = collections.defaultdict(float)

    def add(self, stage: str, started) -> None:
        """Add the time since ``started`` (from :func:`_clock`) to ``stage``."""
        wall, cpu = _clock()
        self[stage] += wall - started[0]
        self.cpu[stage] += cpu - started[1]

    def clear(self) -> None:
        super().clear()
        self.cpu.clear()


def _clock():
    return time.perf_counter(), time.thread_time()


class NLFEstimator(Estimator):
    """YOLOX-L + DWPose-L (onnxruntime) and NLF-L (TorchScript), GPU when present, else CPU.

    Args:
        weights_dir: folder of the three files (None: $SCAIL_WEIGHTS_DIR, else
            ``pretrained_weights/``).
        device: "auto" / None (CUDA for each library that has it), "cuda" (error up front
            when onnxruntime or torch lacks CUDA) or "cpu".
        batch_size: masked images per NLF call (64 as the reference); halved on CUDA
            out-of-memory.
        people: "all" (every detected person, the default) or "first" (the reference's
            single-person selection).
        fallback_2d: when the detector finds nobody, keep DWPose's whole-image "person" as 2D
            only (docs/pipeline.md §2.2 keeps it for the overlay); off by default: such a frame
            is missing.

    Raises:
        WeightsMissing: a file is absent, or not the model it should be (names file and fix).
        EstimatorError: the device cannot be used; onnxruntime/torch not installed.
    """

    name = NAME
    label = "NLF (studio-grade, GPU)"
    version = "nlf_l_multi 0.3.2 + dw-ll_ucoco_384 + yolox_l"
    needs_weights = True

    @classmethod
    def availability(cls, *, weights_dir=None, device: Optional[str] = None):
        """Cheap: packages present (find_spec), a known device, files pass
        :func:`models.inspect_weights` (cached). Never raises. Whether CUDA works is left to the
        constructor, so that ``--device cuda`` without CUDA is an error, not a quiet fallback."""
        import importlib.util

        missing = [p for p in ("onnxruntime", "torch") if importlib.util.find_spec(p) is None]
        if missing:
            return False, (f"{', '.join(missing)} not installed; pip install -e '.[nlf]' (CPU) "
                           f"or see the README's GPU install")
        if (device or "auto").lower() not in models.DEVICES:
            return False, f"unknown device {device!r}; use one of {', '.join(models.DEVICES)}"
        try:
            models.inspect_weights(weights_dir)
        except Exception as e:  # never raises: any problem is a reason
            return False, str(e)
        return True, ""

    def __init__(self, *, weights_dir=None, device: Optional[str] = None,
                 batch_size: int = nlf3d.BATCH_SIZE, people: str = "all",
                 fallback_2d: bool = False):
        if people not in PEOPLE_MODES:
            raise EstimatorError(f"people must be one of {', '.join(PEOPLE_MODES)}, got {people!r}")
        if int(batch_size) < 1:
            raise EstimatorError(f"batch_size must be >= 1, got {batch_size}")
        self.people = people
        self.fallback_2d = bool(fallback_2d)
        self.batch_size = int(batch_size)
        self.models = models.load_models(weights_dir, device)
        self.devices = self.models.describe_devices()
        self.device = _summary(self.devices)
        self.timings = Timings()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="scail-nlf")
        self._grid = detector.grid_and_strides()
        log.info("nlf models: YOLOX-L on %s, DWPose-L on %s, NLF-L on %s (weights in %s)",
                 self.devices["yolox"], self.devices["dwpose"], self.devices["nlf"],
                 self.models.paths[models.NLF_FILE].parent)

    def describe(self) -> dict:
        return dict(super().describe(), estimator_devices=dict(self.devices), people=self.people)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.models = None

    # --- the clip ----------------------------------------------------------------------------

    def estimate(self, frames: Iterable[np.ndarray], *, size, fps: float,
                 K: Optional[np.ndarray] = None, total: Optional[int] = None,
                 progress: Optional[ProgressFn] = None) -> PoseSequence:
        """See :meth:`Estimator.estimate`. P = 1 for ``people="first"``, else the most people
        seen in one frame (at least 1)."""
        if self.models is None:
            raise EstimatorError("this nlf estimator has been closed")
        progress = progress or no_progress
        height, width = (int(v) for v in size)
        default_K = intrinsics_from_fov(height, width)
        K = default_K if K is None else np.asarray(K, dtype=np.float64)
        nlf_K = None if np.allclose(K, default_K) else K  # None: NLF's own FOV 55° (parity)
        if nlf_K is not None and not self.models.nlf_takes_intrinsics:
            raise EstimatorError(f"{self.models.paths[models.NLF_FILE]} takes no intrinsic_matrix; "
                                 f"use the default intrinsics (FOV 55°)")
        run = _Run(self, (height, width), nlf_K)
        progress(ESTIMATE_STAGE, 0, total or 0)
        try:
            group = []
            for frame in frames:
                if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                    raise EstimatorError(f"frame {run.count + len(group)} is {frame.shape} "
                                         f"{frame.dtype}, expected ({height}, {width}, 3) uint8 RGB")
                group.append(frame)
                if len(group) == FRAMES_PER_STEP:
                    run.step(group)
                    group = []
                    progress(ESTIMATE_STAGE, run.count, total if total and total >= run.count else 0)
            if group:
                run.step(group)
            run.finish()
        except BaseException:
            run.abandon()
            raise
        progress(ESTIMATE_STAGE, run.count, run.count)
        started = _clock()
        seq = _assemble(run.frames, (height, width), fps, K, self.describe(),
                        1 if self.people == "first" else None)
        self.timings.add("assemble", started)
        found = int(seq.present().any(axis=0).sum()) if seq.num_people else 0
        log.info("nlf found a person in %d of %d frames", found, seq.num_frames)
        return seq


class _Run:
    """One clip's streaming state: the per-frame results and the NLF buffers in flight."""

    def __init__(self, est: NLFEstimator, frame_hw, nlf_K):
        self.est = est
        self.m = est.models
        self.frame_hw = frame_hw
        self.nlf_K = nlf_K
        self.frames: List[_Frame] = []
        pin = self.m.nlf_device.startswith("cuda")
        self.buffers = [nlf3d.MaskedBatch(est.batch_size, frame_hw, pin) for _ in range(2)]
        self.slots: List[list] = [[], []]        # per buffer: (frame index, person index)
        self.pending: List[Optional[concurrent.futures.Future]] = [None, None]
        self.current = 0
        self.det_input = np.empty((0, 3) + detector.INPUT_HW, np.float32)
        self.padded = 0  # leading det_input images whose 114 padding is in place

    @property
    def count(self) -> int:
        return len(self.frames)

    def step(self, group: List[np.ndarray]) -> None:
        """Detection, 2D and NLF submission for a few frames."""
        t = self.est.timings
        boxes = self._detect(group)
        chosen = []
        for frame, found in zip(group, boxes):
            if self.est.people == "first":
                found = found[:1]
            fallback = len(found) == 0 and self.est.fallback_2d
            use = detector.whole_image_box(self.frame_hw) if fallback else found
            chosen.append((frame, use, fallback))
        kp, score = self._keypoints([(f, b) for f, b, _ in chosen])
        started = _clock()
        offset = 0
        for frame, use, fallback in chosen:
            n = len(use)
            index = len(self.frames)
            stored = np.full((n, 4), np.nan, np.float32) if fallback else use.astype(np.float32)
            self.frames.append(_Frame(stored, kp[offset:offset + n], score[offset:offset + n],
                                      np.full((n, nlf3d.NUM_JOINTS, 3), np.nan, np.float32)))
            offset += n
            if fallback:
                continue
            for p, box in enumerate(use):
                self._add_masked(frame, box, index, p)
        t.add("mask", started)

    def _detect(self, group) -> List[np.ndarray]:
        t, yolox = self.est.timings, self.m.yolox
        started = _clock()
        n = len(group)
        if self.det_input.shape[0] < n:
            self.det_input = np.empty((n, 3) + detector.INPUT_HW, np.float32)
            self.padded = 0
        ratios = [detector.letterbox(f, self.det_input[i], fill=i >= self.padded)[1]
                  for i, f in enumerate(group)]
        self.padded = max(self.padded, n)  # the 114 padding stays (one frame size per clip)
        t.add("letterbox", started)
        started = _clock()
        step = n if yolox.batch == 0 else yolox.batch
        raw = np.concatenate([yolox.run(self.det_input[i:i + step], ["output"])[0]
                              for i in range(0, n, step)])
        t.add("yolox", started)
        started = _clock()
        grid, strides = self.est._grid
        out = [detector.people(raw[i], ratios[i], grid, strides)[0] for i in range(n)]
        t.add("decode", started)
        return out

    def _keypoints(self, items):
        """DWPose on every (frame, boxes) pair; (N, 134, 2) pixels and (N, 134) scores."""
        t, dw = self.est.timings, self.m.dwpose
        total = sum(len(b) for _, b in items)
        if total == 0:
            return (np.zeros((0, 134, 2), np.float32), np.zeros((0, 134), np.float32))
        started = _clock()
        batch = np.empty((total, 3) + wholebody.INPUT_HW, np.float32)
        centres, scales = [], []
        offset = 0
        for frame, boxes in items:
            if len(boxes) == 0:
                continue
            centre, scale = wholebody.centre_scale(boxes)
            wholebody.crops(frame, centre, scale, batch[offset:offset + len(boxes)])
            centres.append(centre)
            scales.append(scale)
            offset += len(boxes)
        centre, scale = np.concatenate(centres), np.concatenate(scales)
        t.add("crop", started)
        started = _clock()
        step = min(total, MAX_CROPS_PER_RUN) if dw.batch == 0 else dw.batch
        outs = [dw.run(batch[i:i + step], ["simcc_x", "simcc_y"]) for i in range(0, total, step)]
        simcc_x = np.concatenate([o[0] for o in outs])
        simcc_y = np.concatenate([o[1] for o in outs])
        t.add("dwpose", started)
        started = _clock()
        points, scores = wholebody.simcc_decode(simcc_x, simcc_y)
        points = wholebody.to_frame(points, centre, scale)
        points, scores = wholebody.to_wholebody134(points, scores)
        t.add("simcc", started)
        return points, scores

    # --- NLF ---------------------------------------------------------------------------------

    def _add_masked(self, frame, box, index: int, person: int) -> None:
        buf = self.buffers[self.current]
        buf.add(frame, nlf3d.crop_window(box, self.frame_hw))
        self.slots[self.current].append((index, person))
        if buf.full:
            self._submit()

    def _submit(self) -> None:
        i = self.current
        if self.buffers[i].count:
            self.pending[i] = self.est._executor.submit(self._nlf, self.buffers[i].images())
        self.current = 1 - i
        self._collect(self.current)  # the other buffer must be free before it is refilled

    def _nlf(self, images):
        started = _clock()
        joints, self.est.batch_size = nlf3d.run_nlf(
            self.m.nlf, images, _torch_device(self.m.nlf_device), self.nlf_K,
            self.est.batch_size, str(self.m.paths[models.NLF_FILE]))
        self.est.timings.add("nlf", started)
        return joints

    def _collect(self, i: int) -> None:
        future = self.pending[i]
        if future is not None:
            joints = future.result()
            for (index, person), found in zip(self.slots[i], joints):
                first = nlf3d.first_detection(found)
                if first is not None:
                    self.frames[index].joints[person] = first
            self.pending[i] = None
        self.slots[i] = []
        self.buffers[i].clear()

    def finish(self) -> None:
        """Run the last partial batch and wait for everything."""
        self._submit()
        self._collect(self.current)
        self._collect(1 - self.current)

    def abandon(self) -> None:
        """After an error or cancellation: wait for the worker, drop its results."""
        for future in self.pending:
            if future is not None:
                future.cancel()
                try:
                    future.result()
                except BaseException:
                    pass


def _torch_device(name: str):
    import torch

    return torch.device(name)


def _summary(devices: Dict[str, str]) -> str:
    values = set(devices.values())
    if len(values) == 1:
        return values.pop()
    return ", ".join(f"{k}={v}" for k, v in devices.items())


def _assemble(frames: List[_Frame], size, fps: float, K: np.ndarray, meta: dict,
              people: Optional[int]) -> PoseSequence:
    """Stack per-frame results into a PoseSequence (P people, T frames, NaN for missing)."""
    T = len(frames)
    P = people or max([1] + [len(f.boxes) for f in frames])
    seq = PoseSequence.empty(P, T, size, fps, K=K, meta=meta)
    if T == 0:
        return seq
    joints = np.array(seq.joints3d)
    kp = np.array(seq.kp2d)
    score = np.array(seq.kp2d_score)
    bbox = np.array(seq.bbox)
    for t, f in enumerate(frames):
        n = min(P, len(f.boxes))
        if n == 0:
            continue
        joints[:n, t] = f.joints[:n]
        bbox[:n, t] = f.boxes[:n]
        valid = f.score[:n] > 0  # SimCC score <= 0: no location (reference sets it to -1)
        kp[:n, t] = np.where(valid[..., None], f.kp[:n], np.nan)
        score[:n, t] = np.where(valid, np.clip(f.score[:n], 0.0, 1.0), np.nan)
    return seq.replace(joints3d=joints, kp2d=kp, kp2d_score=score, bbox=bbox)
