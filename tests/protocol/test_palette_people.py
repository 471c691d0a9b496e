"""Palettes of several people: the reference's two (§10), then generated distinct ones."""

import itertools

import numpy as np

from scail_protocol import palette as P

MIN_PALETTE_DISTANCE = 0.1  # mean per-limb distance of shader RGB ([0, 1]) between two people


def test_first_two_people_get_the_reference_palettes():
    assert P.limb_colors_rgb8(0, 2) == P.PASTEL_LIMB_COLORS_RGB8
    assert P.limb_colors_rgb8(1, 2) == P.SATURATED_LIMB_COLORS_RGB8
    assert P.limb_colors_rgb8(0, 1) == P.LIMB_COLORS_RGB8
    assert P.limb_colors_rgb8(1, 2)[0] == (255, 20, 20)  # docs/pipeline.md §10, limb 0 of person 1


def test_eight_people_have_pairwise_distinct_palettes():
    shader = [P.shader_rgba(P.limb_colors_rgb8(p, 8))[:, :3] for p in range(8)]
    for a, b in itertools.combinations(range(8), 2):
        distance = float(np.linalg.norm(shader[a] - shader[b], axis=-1).mean())
        assert distance >= MIN_PALETTE_DISTANCE, f"people {a} and {b}: {distance:.3f}"
    for p in range(8):
        colours = P.limb_colors_rgb8(p, 8)
        assert len(colours) == 17
        assert all(0 <= c <= 255 for colour in colours for c in colour)


def test_generated_palettes_keep_each_limbs_hue():
    saturated = P.rgb_to_hsv(np.asarray(P.SATURATED_LIMB_COLORS_RGB8) / 255.0)
    for p in (2, 3, 4, 5):  # the first round changes only saturation and brightness
        hsv = P.rgb_to_hsv(np.asarray(P.limb_colors_rgb8(p, 6)) / 255.0)
        coloured = saturated[:, 1] > 0.2
        diff = np.abs(hsv[coloured, 0] - saturated[coloured, 0])
        assert (np.minimum(diff, 1 - diff) < 0.02).all()


def test_rgb_hsv_round_trip():
    rgb = np.random.default_rng(3).random((200, 3))
    np.testing.assert_allclose(P.hsv_to_rgb(P.rgb_to_hsv(rgb)), rgb, atol=1e-12)
