"""Several people in the conditioning render: a palette each, mutual occlusion, own hands."""

import numpy as np
import pytest

from scail_protocol import joints as J
from scail_protocol import palette
from scail_protocol.capsules import DepthRange, drawn_endpoint_z_range, frame_capsules
from scail_protocol.overlay import draw_overlay

import render_scenes as S


@pytest.fixture(scope="module")
def renderer():
    from scail_backend.render.capsule_renderer import CapsuleRenderer

    return CapsuleRenderer(S.SIZE, arch="cpu", batch_frames=4)


def _render(renderer, joints, depth_from=None):
    """One frame; depth shading normalised over ``depth_from`` (default: these joints)."""
    z_range = drawn_endpoint_z_range(joints if depth_from is None else depth_from)
    return renderer.render([frame_capsules(joints)], DepthRange.from_z_range(*z_range), S.K)[0]


def _pixel_of(joint_mm):
    return (int(round(S.K[1, 1] * joint_mm[1] / joint_mm[2] + S.K[1, 2])),
            int(round(S.K[0, 0] * joint_mm[0] / joint_mm[2] + S.K[0, 2])))


def test_four_people_each_in_their_own_palette(renderer):
    xs = (-600.0, -200.0, 200.0, 600.0)  # the image spans about ±960 mm at 6 m
    joints = np.stack([S.upper_body(6000.0, x) for x in xs])
    scene = frame_capsules(joints)
    for p in range(4):
        mine = scene.person == p
        want = palette.shader_rgba(palette.limb_colors_rgb8(p, 4))[scene.limb[mine]]
        np.testing.assert_array_equal(scene.colors[mine], want)
    img = _render(renderer, joints)
    seen = set()
    for p in range(4):
        row, col = _pixel_of((joints[p, 2] + joints[p, 3]) / 2)  # the right upper arm
        assert 0 <= row < S.SIZE[0] and 0 <= col < S.SIZE[1]
        assert img[row, col, 3] == 204, f"person {p} not drawn at ({row}, {col})"
        seen.add(tuple(img[row, col, :3]))
    assert len(seen) == 4  # the same limb in four different colours


def test_nearest_of_three_overlapping_people_shows(renderer):
    joints = np.stack([S.upper_body(5000.0, 250.0), S.upper_body(3000.0, 0.0),
                       S.upper_body(4000.0, -250.0)])
    img = _render(renderer, joints)
    for p in range(3):
        alone = np.full_like(joints, np.nan)
        alone[p] = joints[p]  # keep P = 3: the same palettes
        layer = _render(renderer, alone, depth_from=joints)
        if p == 1:  # the nearest: wherever it is drawn, it is what shows
            drawn = layer[..., 3] > 0
            np.testing.assert_array_equal(img[drawn], layer[drawn])
        else:
            assert (img[..., 3] > 0).sum() > (layer[..., 3] > 0).sum()


def test_the_render_pairs_each_person_with_their_own_hands():
    """Two people whose hands share pixels: the sum of per-person canvases differs between the
    reference's pairing (§14.6) and ours; the pipeline draws ours."""
    from scail_backend.render.pipeline import iter_rendered_frames
    from scail_protocol.sequence import PoseSequence

    size = (64, 64)
    seq = PoseSequence.empty(2, 1, size, 16.0)
    kp = np.full((2, 1, J.NUM_WHOLEBODY, 2), np.nan, np.float32)
    score = np.full((2, 1, J.NUM_WHOLEBODY), np.nan, np.float32)
    kp[0, 0, J.LEFT_HAND.start] = (10, 10)
    kp[1, 0, J.LEFT_HAND.start] = (40, 40)   # person 1's hands on one pixel
    kp[1, 0, J.RIGHT_HAND.start] = (40, 40)
    score[np.isfinite(kp).all(-1)] = 0.9
    seq = seq.replace(kp2d=kp, kp2d_score=score)
    frame = next(iter_rendered_frames(seq, arch="cpu"))
    own = draw_overlay(kp[:, 0], score[:, 0], size, reference_hand_pairing=False)
    reference = draw_overlay(kp[:, 0], score[:, 0], size)
    assert (own != reference).any()
    np.testing.assert_array_equal(frame[..., :3], own)
