"""Geometry of the mediapipe estimator's people search (estimators/person_search.py)."""

import numpy as np
import pytest

from scail_backend.estimators import mediapipe_tables as T
from scail_backend.estimators import person_search as S


def _standing_pose(cx=200.0, top=100.0, height=200.0) -> np.ndarray:
    """(33, 2) a rough standing MediaPipe pose, pixels."""
    pose = np.zeros((T.NUM_POSE, 2))
    rows = {**{i: 0.05 for i in range(0, 11)}, 11: 0.2, 12: 0.2, 13: 0.4, 14: 0.4, 15: 0.55,
            16: 0.55, 17: 0.58, 18: 0.58, 19: 0.58, 20: 0.58, 21: 0.57, 22: 0.57, 23: 0.55,
            24: 0.55, 25: 0.77, 26: 0.77, 27: 0.97, 28: 0.97, 29: 1.0, 30: 1.0, 31: 1.0,
            32: 1.0}
    for i, r in rows.items():
        side = 1 if i in (1, 2, 3, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31) else -1
        spread = 0.02 if i <= 10 else 0.12
        pose[i] = (cx + side * spread * height, top + r * height)
    return pose


@pytest.mark.parametrize("size", [(512, 896), (896, 512), (256, 256), (300, 1000)])
def test_tiles_are_square_and_cover_the_frame(size):
    for side in (None, min(size) // 2):
        windows = S.tiles(size, side=side)
        covered = np.zeros(size, bool)
        for x0, y0, x1, y1 in windows:
            assert x1 - x0 == y1 - y0 == (side or min(size))
            assert 0 <= x0 and 0 <= y0 and x1 <= size[1] and y1 <= size[0]
            covered[y0:y1, x0:x1] = True
        assert covered.all()


def test_crop_around_is_a_square_inside_the_frame():
    assert S.crop_around((400, 200, 440, 300), (512, 896)) == (320, 150, 520, 350)  # 2 x 100
    x0, y0, x1, y1 = S.crop_around((880, 490, 900, 520), (512, 896))  # at the corner
    assert x1 == 896 and y1 == 512 and x1 - x0 == y1 - y0 == S.MIN_CROP_PX
    x0, y0, x1, y1 = S.crop_around((0, 0, 2000, 2000), (512, 896))
    assert x1 - x0 == y1 - y0 == 512 and x1 <= 896  # at most the frame's short side


def test_painting_a_body_covers_its_own_points_but_not_a_neighbours():
    image = np.zeros((400, 600, 3), np.uint8)
    mask = np.zeros((400, 600), np.uint8)
    me, neighbour = _standing_pose(200), _standing_pose(450)
    S.paint_body(image, mask, me)
    visible = np.ones(T.NUM_POSE)
    assert S.mostly_covered(mask, me, visible)
    assert not S.mostly_covered(mask, neighbour, visible)
    assert (image[mask > 0] == S.PAINT_RGB).all() and not image[mask == 0].any()


def test_the_silhouette_is_painted_only_near_the_person():
    mask = np.zeros((400, 600), np.uint8)
    image = np.zeros((400, 600, 3), np.uint8)
    silhouette = np.zeros((200, 300), bool)   # a window at (100, 50)
    silhouette[40:60, 60:80] = True            # hair beside the head: near the person
    silhouette[150:190, 260:295] = True        # far outside the person's box: ignored
    S.paint_body(image, mask, _standing_pose(200), silhouette=silhouette, origin=(100, 50))
    assert mask[50 + 50, 100 + 70] == 1
    assert mask[50 + 170, 100 + 280] == 0
