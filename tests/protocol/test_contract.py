"""The output contract (scail_protocol.contract) is the one home of the rate, the hit alpha, the
overlay compositing rule and the default working size; these tests read each rule from there
and fail when a copy elsewhere drifts from it."""

from __future__ import annotations

import numpy as np

from scail_protocol import contract, overlay, palette


def test_hit_alpha_is_the_capsule_alpha_as_uint8():
    # the renderers truncate clamp(a, 0, 1) * 255, as the reference's kernel does (§6.4)
    assert contract.HIT_ALPHA == int(np.float32(palette.LIMB_ALPHA) * np.float32(255.0))
    assert palette.shader_rgba([(255, 0, 0)])[0, 3] == np.float32(palette.LIMB_ALPHA)


def test_dense_and_sparse_overlay_composites_follow_the_one_rule():
    rng = np.random.default_rng(3)
    render = rng.integers(0, 256, (6, 7, 4), dtype=np.uint8)
    canvas = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8) * (rng.random((6, 7, 3)) < 0.5)
    canvas = canvas.astype(np.uint8)
    dense = overlay.composite_per_channel(render, canvas)
    expected = np.where(canvas != 0, canvas, render[..., :3])
    np.testing.assert_array_equal(dense[..., :3], expected)
    np.testing.assert_array_equal(dense[..., 3], render[..., 3])
    np.testing.assert_array_equal(contract.composite_channels(render[..., :3], canvas), expected)
