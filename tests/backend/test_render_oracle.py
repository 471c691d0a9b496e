"""Golden numbers of docs/pipeline.md §15 for the reference ray marcher (oracle) and the production
renderer: scene A/B pixels, the depth factor example, alpha, empty scenes."""

import numpy as np
import pytest

from scail_protocol.capsules import CapsuleScene, DepthRange

SCENE_K = np.array([[640.0, 0.0, 32.0], [0.0, 640.0, 32.0], [0.0, 0.0, 1.0]])  # §15 scene A
RED = (1.0, 0.15, 0.15, 0.8)
BLUE = (0.15, 0.15, 1.0, 0.8)
TOLERANCE = 3  # docs/pipeline.md §15: float32 vs float64 agree within ±2 levels; test with ±3

SCENE_A_PIXELS = {  # (row, col): RGBA, docs/pipeline.md §15
    (32, 32): (255, 165, 165, 204), (33, 32): (255, 95, 95, 204), (34, 32): (240, 40, 40, 204),
    (35, 32): (211, 31, 31, 204), (36, 32): (163, 24, 24, 204), (37, 32): (0, 0, 0, 0),
    (28, 32): (163, 24, 24, 204), (27, 32): (0, 0, 0, 0), (32, 5): (255, 164, 164, 204),
}
SCENE_B_PIXELS = {(10, 32): (148, 148, 255, 204), (20, 32): (149, 149, 255, 204),
                  (32, 32): (255, 165, 165, 204)}


def _scene(*capsules) -> CapsuleScene:
    n = len(capsules)
    return CapsuleScene(
        starts=np.array([c[0] for c in capsules], np.float32).reshape(n, 3),
        ends=np.array([c[1] for c in capsules], np.float32).reshape(n, 3),
        colors=np.array([c[2] for c in capsules], np.float32).reshape(n, 4),
        person=np.zeros(n, np.int32), limb=np.arange(n, dtype=np.int32))


SCENE_A = _scene(((-200, 0, 3000), (200, 0, 3000), RED))
SCENE_B = _scene(((-200, 0, 3000), (200, 0, 3000), RED), ((0, -300, 4000), (0, 300, 4000), BLUE))


@pytest.fixture(scope="module")
def renderers():
    from scail_backend.render.capsule_renderer import CapsuleRenderer
    from scail_backend.render.oracle import OracleRenderer

    return {"oracle": OracleRenderer((64, 64), arch="cpu"),
            "production": CapsuleRenderer((64, 64), arch="cpu")}


def _render(renderers, which, scene, depth):
    if which == "oracle":
        return renderers["oracle"].render(scene, depth, SCENE_K)
    return renderers["production"].render([scene], depth, SCENE_K)[0]


def test_depth_constants_of_scene_a_and_b():
    a = DepthRange.from_z_range(3000.0, 3000.0)
    assert (a.depth_near, a.depth_far, a.zfar, a.znear) == (3000.0, 9000.0, 10000.0, 0.1)
    assert DepthRange.from_z_range(3000.0, 4000.0).depth_far == 10000.0


def test_depth_factor_example():
    depth = DepthRange.from_z_range(2800.0, 3300.0)
    assert depth.depth_far - depth.znear == pytest.approx(9299.9)
    np.testing.assert_allclose(depth.attenuation([3000.0, 3300.0]), [0.97849, 0.94624], atol=1e-5)
    assert depth.attenuation(2500.0) == 1.0  # nearer than z_min clamps to 1


@pytest.mark.parametrize("which", ["oracle", "production"])
def test_scene_a_golden_pixels(renderers, which):
    img = _render(renderers, which, SCENE_A, DepthRange.from_z_range(3000.0, 3000.0))
    for (row, col), rgba in SCENE_A_PIXELS.items():
        np.testing.assert_allclose(img[row, col].astype(int), rgba, atol=TOLERANCE,
                                   err_msg=f"pixel {(row, col)}")


@pytest.mark.parametrize("which", ["oracle", "production"])
def test_scene_b_golden_pixels_nearer_capsule_wins(renderers, which):
    img = _render(renderers, which, SCENE_B, DepthRange.from_z_range(3000.0, 4000.0))
    for (row, col), rgba in SCENE_B_PIXELS.items():
        np.testing.assert_allclose(img[row, col].astype(int), rgba, atol=TOLERANCE,
                                   err_msg=f"pixel {(row, col)}")


@pytest.mark.parametrize("which", ["oracle", "production"])
def test_alpha_is_204_on_hits_and_background_is_transparent_black(renderers, which):
    img = _render(renderers, which, SCENE_B, DepthRange.from_z_range(3000.0, 4000.0))
    hit = img[..., 3] > 0
    assert 0 < hit.sum() < hit.size
    assert (img[..., 3][hit] == 204).all()
    assert not img[~hit].any()


@pytest.mark.parametrize("which", ["oracle", "production"])
def test_empty_scene_renders_nothing(renderers, which):
    empty = _scene()
    img = _render(renderers, which, empty, DepthRange.from_z_range(0.0, 0.0))
    assert img.shape == (64, 64, 4) and not img.any()


def test_oracle_and_production_agree_on_scene_b(renderers):
    from render_scenes import foreground_iou, mean_rgb_diff

    depth = DepthRange.from_z_range(3000.0, 4000.0)
    a = _render(renderers, "oracle", SCENE_B, depth)
    b = _render(renderers, "production", SCENE_B, depth)
    assert foreground_iou(a, b) >= 0.995
    assert mean_rgb_diff(a, b) <= 2.0
