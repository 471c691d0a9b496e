"""NLF 3D around the TorchScript model: masked full-frame images, batches, results
(docs/pipeline.md §3.2-3.5).

For every (frame, person box) the model sees the full-size frame with everything outside the box
(plus margins of 2.5 % of the image width and 5 % of its height) set to black, so the camera
geometry of the full frame is kept. Images are gathered into batches (64, as the reference) and
run through ``detect_smpl_batched``; ``joints3d_nonparam`` (SMPL-24, millimetres, camera frame)
is read back, one (k, 24, 3) tensor per image, and the first of the k detections is kept.
"""

from __future__ import annotations

import logging
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

from scail_protocol.errors import EstimatorError

log = logging.getLogger(__name__)

MARGIN_X = 0.025          # fraction of the image WIDTH added left and right of a box
MARGIN_Y = 0.05           # fraction of the image HEIGHT added above and below
BATCH_SIZE = 64           # images per detect_smpl_batched call (reference)
JOINTS_KEY = "joints3d_nonparam"
NUM_JOINTS = 24


def crop_window(box: Sequence[float], frame_hw: Tuple[int, int]) -> Tuple[int, int, int, int]:
    """Pixel window (x1, y1, x2, y2), end-exclusive, kept of a frame for one box.

    x1 = max(0, floor(bx1 − 0.025·W)), y1 = max(0, floor(by1 − 0.05·H)),
    x2 = min(W, ceil(bx2 + 0.025·W)), y2 = min(H, ceil(by2 + 0.05·H)).

    Args:
        box: x1 y1 x2 y2 in pixels.
        frame_hw: (H, W).
    """
    height, width = frame_hw
    x1, y1, x2, y2 = (float(v) for v in box)
    return (max(0, math.floor(x1 - MARGIN_X * width)), max(0, math.floor(y1 - MARGIN_Y * height)),
            min(width, math.ceil(x2 + MARGIN_X * width)),
            min(height, math.ceil(y2 + MARGIN_Y * height)))


class MaskedBatch:
    """A reusable (B, 3, H, W) uint8 RGB buffer of masked full-frame images.

    Each slot is black except its window; refilling a slot blacks out only the previous window.

    Args:
        capacity: images per batch.
        frame_hw: (H, W).
        pin: allocate in page-locked memory (faster copies to a CUDA device).
    """

    def __init__(self, capacity: int, frame_hw: Tuple[int, int], pin: bool = False):
        import torch

        shape = (capacity, 3) + tuple(frame_hw)
        self.tensor = torch.zeros(shape, dtype=torch.uint8, pin_memory=pin)
        self.array = self.tensor.numpy()
        self.capacity = capacity
        self.count = 0
        self._windows: List[Optional[Tuple[int, int, int, int]]] = [None] * capacity

    def add(self, frame_rgb: np.ndarray, window: Tuple[int, int, int, int]) -> int:
        """Copy the window of an (H, W, 3) uint8 RGB frame into the next slot; returns the slot."""
        slot = self.count
        old = self._windows[slot]
        if old is not None:
            self.array[slot, :, old[1]:old[3], old[0]:old[2]] = 0
        x1, y1, x2, y2 = window
        self.array[slot, :, y1:y2, x1:x2] = frame_rgb[y1:y2, x1:x2].transpose(2, 0, 1)
        self._windows[slot] = window
        self.count += 1
        return slot

    @property
    def full(self) -> bool:
        return self.count >= self.capacity

    def images(self):
        """The filled part, (count, 3, H, W) uint8 tensor (a view)."""
        return self.tensor[:self.count]

    def clear(self) -> None:
        self.count = 0


def run_nlf(model, images, device, intrinsics: Optional[np.ndarray], batch_size: int,
            path: str = "the NLF model") -> Tuple[List[np.ndarray], int]:
    """``detect_smpl_batched`` on a batch; on CUDA out-of-memory, halve the batch and retry.

    Args:
        model: the TorchScript module.
        images: (B, 3, H, W) uint8 tensor (CPU).
        device: torch device to run on.
        intrinsics: (3, 3) K to pass as ``intrinsic_matrix``, or None (the model's FOV 55°).
        batch_size: largest number of images per call.

    Returns:
        (joints, batch_size): a list of B float32 arrays (k_b, 24, 3) in millimetres, and the batch
        size that worked (smaller than asked after an out-of-memory retry).

    Raises:
        EstimatorError: the output lacks ``joints3d_nonparam`` or has the wrong shape, or even
            one image does not fit in memory.
    """
    import torch

    out: List[np.ndarray] = []
    start = 0
    total = images.shape[0]
    while start < total:
        chunk = images[start:start + batch_size]
        try:
            out.extend(_call(model, chunk, device, intrinsics, path))
        except Exception as e:  # torch.OutOfMemoryError, or torch.jit.Error from TorchScript
            if not is_out_of_memory(e):
                raise
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if batch_size <= 1:
                raise EstimatorError(f"{path}: out of memory on {device} even for one image; "
                                     f"use a smaller --resolution or --device cpu") from None
            batch_size = max(1, batch_size // 2)
            log.warning("NLF ran out of memory on %s with %d images per batch; retrying with %d",
                        device, chunk.shape[0], batch_size)
            continue
        start += chunk.shape[0]
    return out, batch_size


def is_out_of_memory(error: BaseException) -> bool:
    """Whether a torch error is an out-of-memory (raised directly or through TorchScript)."""
    import torch

    return (isinstance(error, torch.cuda.OutOfMemoryError)
            or "out of memory" in str(error).lower())


def _call(model, chunk, device, intrinsics, path: str) -> List[np.ndarray]:
    import torch

    with torch.inference_mode():
        images = chunk.to(device, non_blocking=True)
        if intrinsics is None:
            result = model.detect_smpl_batched(images)
        else:
            K = torch.as_tensor(np.asarray(intrinsics, np.float32)[None], device=device)
            result = model.detect_smpl_batched(images, intrinsic_matrix=K)
        if not isinstance(result, dict) or JOINTS_KEY not in result:
            keys = sorted(result) if isinstance(result, dict) else type(result).__name__
            raise EstimatorError(f"{path}: detect_smpl_batched returned no {JOINTS_KEY!r} "
                                 f"(got {keys}); use the NLF multi-person TorchScript "
                                 f"(nlf_l_multi_0.3.2.torchscript)")
        per_image = result[JOINTS_KEY]
        if len(per_image) != chunk.shape[0]:
            raise EstimatorError(f"{path}: {JOINTS_KEY} has {len(per_image)} entries for "
                                 f"{chunk.shape[0]} images")
        joints = [t.detach().to("cpu", torch.float32).numpy() for t in per_image]
    for j in joints:
        if j.ndim != 3 or j.shape[1:] != (NUM_JOINTS, 3):
            raise EstimatorError(f"{path}: {JOINTS_KEY} entries must be (k, 24, 3), got "
                                 f"{tuple(j.shape)}")
    return joints


def first_detection(joints: np.ndarray) -> Optional[np.ndarray]:
    """The reference's choice inside one masked image: detection 0, or None when there is none.

    Returns:
        (24, 3) float32 millimetres, or None (the reference substitutes zeros; we keep it missing).
    """
    if joints.shape[0] == 0:
        return None
    first = joints[0].astype(np.float32)
    if not np.isfinite(first).all():
        return None
    return first
