"""Hand-made capsule scenes and image metrics shared by the renderer tests.

Scenes are OpenPose-18 joint arrays (P, 18, 3) in mm (camera frame, NaN = missing), so they go
through the real ``frame_capsules``. The camera is zoomed in (f = 800 px on a 160 x 256 image)
so that capsules are ~6 px wide and silhouettes are not all edge.
"""

from __future__ import annotations

import numpy as np

SIZE = (160, 256)  # H, W
K = np.array([[800.0, 0.0, 128.0], [0.0, 800.0, 80.0], [0.0, 0.0, 1.0]])
NAN3 = (np.nan, np.nan, np.nan)


def upper_body(z_mm: float = 3000.0, x_mm: float = 0.0) -> np.ndarray:
    """(18, 3) a person facing the camera, arms down, legs below the image; eyes/ears missing."""
    j = np.full((18, 3), np.nan)
    joints = {
        0: (0, -330, -20), 1: (0, -250, 0), 2: (-170, -230, 0), 3: (-210, 0, 10),
        4: (-220, 200, 0), 5: (170, -230, 0), 6: (210, 0, 10), 7: (220, 200, 0),
        8: (-100, 250, 0), 9: (-110, 650, 0), 10: (-110, 1050, 0), 11: (100, 250, 0),
        12: (110, 650, 0), 13: (110, 1050, 0),
    }
    for index, (x, y, dz) in joints.items():
        j[index] = (x + x_mm, y, z_mm + dz)
    return j


def self_occlusion() -> np.ndarray:
    """(1, 18, 3) the right forearm crosses in front of the chest."""
    j = upper_body()
    j[3] = (-200, -20, 2900)
    j[4] = (90, -80, 2700)
    return j[None]


def two_people_depths() -> np.ndarray:
    """(2, 18, 3) a near person (2.6 m) partly hiding a far one (4.5 m) standing behind."""
    return np.stack([upper_body(2600.0, -150.0), upper_body(4500.0, 250.0)])


def crossing_limbs() -> np.ndarray:
    """(1, 18, 3) both forearms cross in an X in front of the belly at different depths."""
    j = upper_body()
    j[3], j[4] = (-200, 0, 2950), (120, 120, 2850)
    j[6], j[7] = (200, 0, 2980), (-120, 110, 2900)
    return j[None]


def missing_joints() -> np.ndarray:
    """(1, 18, 3) right elbow and left hip missing: their limbs must not be drawn."""
    j = upper_body()
    j[3] = NAN3
    j[11] = NAN3
    return j[None]


def joint_behind_camera() -> np.ndarray:
    """(1, 18, 3) the right wrist is behind the camera: the forearm crosses the camera plane."""
    j = upper_body()
    j[3] = (-150, 0, 700)
    j[4] = (-100, 60, -400)
    return j[None]


def empty() -> np.ndarray:
    """(1, 18, 3) nobody."""
    return np.full((1, 18, 3), np.nan)


SCENES = {
    "self_occlusion": self_occlusion,
    "two_people_depths": two_people_depths,
    "crossing_limbs": crossing_limbs,
    "missing_joints": missing_joints,
    "joint_behind_camera": joint_behind_camera,
    "empty": empty,
}


def foreground_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of the alpha > 0 masks of two RGBA images (1.0 when both are empty)."""
    fa, fb = a[..., 3] > 0, b[..., 3] > 0
    union = (fa | fb).sum()
    return 1.0 if union == 0 else float((fa & fb).sum() / union)


def mean_rgb_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |RGB difference| in levels (0-255) over pixels that are foreground in both."""
    both = (a[..., 3] > 0) & (b[..., 3] > 0)
    if not both.any():
        return 0.0
    return float(np.abs(a[..., :3].astype(int) - b[..., :3].astype(int))[both].mean())
