"""The reference image: where it is, how it is read, and its character's pose.

The image is resized and centre-cropped to the *driving* video's working size, as the reference
does (§1.2 step 4: same target whatever the image's own orientation), and its pose is estimated
with the same estimator as the driving video. With several characters in the image the first
one the estimator lists is used, as the reference does, and the log says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from scail_protocol import joints as J
from scail_protocol.contract import REFERENCE_IMAGE_NAMES
from scail_protocol.errors import AlignError, VideoError

log = logging.getLogger(__name__)

SAME = "same"           # estimator choice: the one that made the driving poses
STILL_FPS = 1.0         # frame rate handed to the estimator for a single image
# Options of a second, more permissive try when the first finds nobody: stylised characters
# (dance_full's squirrel) score below MediaPipe's default detection confidence of 0.5. One
# character only: at that threshold the multi-person cascade also "finds" background shapes.
SECOND_TRY = {"mediapipe": {"min_detection_confidence": 0.1, "max_people_per_frame": 1}}


@dataclass(frozen=True)
class ReferencePose:
    """The reference character's pose at the driving video's working size.

    Attributes:
        path: the image file.
        size: (H, W) working size, pixels.
        kp2d: (134, 2) whole-body points, pixels; NaN = missing.
        kp2d_score: (134,) confidences; NaN = missing.
        joints3d: (24, 3) SMPL-24 joints, camera frame, mm; NaN = missing.
        people: how many characters the estimator found.
        person: which one is used (index in the estimator's order).
        estimator: name of the estimator that ran.
    """

    path: Path
    size: tuple
    kp2d: np.ndarray
    kp2d_score: np.ndarray
    joints3d: np.ndarray
    people: int
    person: int
    estimator: str


def find_reference_image(folder) -> Optional[Path]:
    """The first of ``ref_image.jpg``, ``ref_image.png``, ``ref.jpg``, ``ref.png`` in ``folder``."""
    folder = Path(folder)
    return next((folder / n for n in REFERENCE_IMAGE_NAMES if (folder / n).is_file()), None)


def read_reference_image(path, size) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the image resized and centre-cropped to ``size`` (§1.2).

    Raises:
        VideoError: missing or unreadable file.
    """
    import cv2

    from ..video.framing import Framing

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"reference image not found: {path}")
    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None  # EXIF orientation applied
    if bgr is None:
        raise VideoError(f"{path} is not a readable image; give a .jpg or .png reference image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return Framing.to_target(rgb.shape[:2], size).apply(rgb)


def estimator_name(choice: str, driving_meta: dict) -> str:
    """The registry name to run on the reference image: ``same`` = the driving poses' one
    (``auto`` when unknown)."""
    from ..estimators import registry

    if choice != SAME:
        return choice
    name = driving_meta.get("estimator")
    return name if name in registry.names() else registry.AUTO


def estimate_reference(path, size, K, *, estimator: str = "auto",
                       weights_dir=None) -> ReferencePose:
    """Estimate the pose of the character in a reference image.

    Args:
        path: image file.
        size: (H, W) driving working size.
        K: (3, 3) intrinsics to estimate with (the driving video's K₀).
        estimator: registry name ("auto", "mediapipe", "nlf").
        weights_dir: where the nlf weights live.

    Raises:
        VideoError: the image cannot be read.
        AlignError: nobody was found in the image.
        WeightsMissing, EstimatorError: from the estimator.
    """
    from ..estimators import registry

    path = Path(path)
    image = read_reference_image(path, size)
    est, _ = registry.resolve(estimator, weights_dir=weights_dir)  # logs which and why
    name = est.name
    try:
        seq = est.estimate([image], size=size, fps=STILL_FPS, K=K, total=1)
    finally:
        est.close()
    if not _present(seq).size and name in SECOND_TRY:
        log.info("nobody found in %s at %s's default detection threshold; trying again with %s",
                 path.name, name, SECOND_TRY[name])
        with registry.create(name, weights_dir=weights_dir, **SECOND_TRY[name]) as again:
            seq = again.estimate([image], size=size, fps=STILL_FPS, K=K, total=1)
    person, people = pick_person(seq, f"the reference image {path.name} ({name})")
    return ReferencePose(path=path, size=tuple(int(v) for v in size),
                         kp2d=np.array(seq.kp2d[person, 0]),
                         kp2d_score=np.array(seq.kp2d_score[person, 0]),
                         joints3d=np.array(seq.joints3d[person, 0]),
                         people=people, person=person, estimator=name)


def _present(seq) -> np.ndarray:
    """Indices of the people with at least one 2D body point in the first frame."""
    if seq.num_frames == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.isfinite(seq.kp2d[:, 0, J.BODY]).all(-1).any(-1))


def pick_person(seq, what: str) -> tuple:
    """(person, people): the first person the estimator lists in a one-frame sequence, and how
    many there are; logs a warning when there are several.

    Raises:
        AlignError: nobody.
    """
    present = _present(seq)
    if len(present) == 0:
        raise AlignError(f"no person found in {what}; use an image where the character's body "
                         f"is clearly visible, or run without alignment")
    person = int(present[0])
    if len(present) > 1:
        log.warning("%s shows %d characters; aligning to the first (person %d), as the "
                    "reference does", what, len(present), person)
    return person, int(len(present))
