"""The capsule scene shared by both renderers (docs/pipeline.md §6.1, §6.3, §15)."""

import numpy as np
import pytest

from scail_protocol import capsules as S
from scail_protocol import joints as J


def standing_op18(z=3000.0):
    op = np.full((18, 3), np.nan)
    op[:14] = [(0, -700, z), (0, -500, z), (-180, -480, z), (-250, -200, z), (-260, 50, z),
               (180, -480, z), (250, -200, z), (260, 50, z), (-100, 0, z), (-100, 300, z),
               (-110, 700, z), (100, 0, z), (100, 300, z), (110, 700, z)]
    return op


def test_full_body_gives_13_capsules_in_draw_order():
    scene = S.frame_capsules(standing_op18()[None])
    assert len(scene) == 13  # eyes/ears are never present in 3D: limbs 13-16 never drawn
    assert scene.limb.tolist() == list(J.LIMB_DRAW_ORDER[:13])
    np.testing.assert_allclose(scene.colors[0], (1.0, 0.15, 0.15, 0.8), atol=1e-6)  # red first


def test_missing_joint_skips_its_limbs():
    op = standing_op18()
    op[3] = np.nan  # right elbow: upper arm and forearm go
    scene = S.frame_capsules(op[None])
    assert len(scene) == 11 and 2 not in scene.limb and 3 not in scene.limb


def test_two_people_use_the_multi_person_palettes():
    scene = S.frame_capsules(np.stack([standing_op18(3000), standing_op18(5000)]))
    assert len(scene) == 26 and scene.person.tolist() == [0] * 13 + [1] * 13
    np.testing.assert_allclose(scene.colors[0, :3], np.array([255, 150, 150]) / 300 + 0.15,
                               atol=1e-6)
    np.testing.assert_allclose(scene.colors[13, :3], np.array([255, 20, 20]) / 300 + 0.15,
                               atol=1e-6)


def test_empty_frame_has_no_capsules():
    assert len(S.frame_capsules(np.zeros((0, 18, 3)))) == 0
    assert len(S.frame_capsules(np.full((1, 18, 3), np.nan))) == 0


def test_depth_range_matches_reference_example():
    # docs/pipeline.md §15: clip z-range [2800, 3300] -> denominator 9299.9, k(3000)=0.97849,
    # k(3300)=0.94624
    depth = S.DepthRange.from_z_range(2800.0, 3300.0)
    assert depth.depth_far - depth.znear == pytest.approx(9299.9)
    assert depth.zfar == 10000.0
    np.testing.assert_allclose(depth.attenuation([3000.0, 3300.0, 2000.0]),
                               [0.97849, 0.94624, 1.0], atol=1e-5)


def test_depth_range_scene_b_constants():
    depth = S.DepthRange.from_z_range(3000.0, 4000.0)
    assert (depth.depth_near, depth.depth_far, depth.zfar) == (3000.0, 10000.0, 10000.0)


def test_drawn_endpoint_z_range_ignores_undrawn_joints():
    op = standing_op18()
    op[16] = (0, 0, 100.0)  # an ear alone draws nothing (its limb partner, the eye, is missing)
    op[10] = (0, 0, 9000.0)
    assert S.drawn_endpoint_z_range(op[None, None]) == (3000.0, 9000.0)
    assert S.drawn_endpoint_z_range(np.full((2, 18, 3), np.nan)) is None
