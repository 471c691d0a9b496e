"""Colours of the conditioning render: capsule limbs, the 2D hand/face/head overlay.

Base colours are 8-bit RGB as the reference writes them (docs/pipeline.md §6.1, §7, §10). Derived
forms (the shader's float RGBA, Blender material colours) are computed from these tables by the
functions below, never stored as second tables.
"""

from __future__ import annotations

import numpy as np

# Limb colours by limb index of ``joints.OPENPOSE18_LIMBS`` (single-person default palette).
LIMB_COLORS_RGB8 = (
    (255, 0, 0),      # 0 neck -> R shoulder: red
    (0, 255, 255),    # 1 neck -> L shoulder: cyan
    (255, 85, 0),     # 2 R upper arm: orange
    (255, 170, 0),    # 3 R forearm: golden orange
    (0, 170, 255),    # 4 L upper arm: sky blue
    (0, 85, 255),     # 5 L forearm: medium blue
    (180, 255, 0),    # 6 neck -> R hip: yellow-green
    (0, 255, 0),      # 7 R thigh: bright green
    (0, 255, 85),     # 8 R shin: light green-blue
    (0, 0, 255),      # 9 neck -> L hip: pure blue
    (85, 0, 255),     # 10 L thigh: purple-blue
    (170, 0, 255),    # 11 L shin: medium purple
    (150, 150, 150),  # 12 neck -> head: grey
    (255, 0, 170),    # 13 head -> R eye: pink-magenta
    (50, 0, 255),     # 14 R eye -> R ear: dark violet
    (255, 0, 170),    # 15 head -> L eye: pink-magenta
    (50, 0, 255),     # 16 L eye -> L ear: dark violet
)

# Several people (docs/pipeline.md §10): first person pastel, second saturated.
PASTEL_LIMB_COLORS_RGB8 = (
    (255, 150, 150), (180, 230, 240), (255, 180, 140), (255, 215, 150), (160, 200, 255),
    (100, 120, 255), (200, 255, 100), (100, 255, 100), (140, 255, 180), (120, 140, 255),
    (180, 90, 255), (190, 120, 255), (210, 210, 210), (255, 120, 200), (130, 80, 255),
    (255, 120, 200), (130, 80, 255),
)
SATURATED_LIMB_COLORS_RGB8 = (
    (255, 20, 20), (0, 230, 255), (255, 60, 0), (255, 110, 0), (0, 130, 255),
    (0, 70, 255), (160, 255, 40), (0, 255, 50), (0, 255, 100), (0, 0, 255),
    (80, 0, 255), (160, 0, 255), (130, 130, 130), (255, 0, 150), (60, 0, 255),
    (255, 0, 150), (60, 0, 255),
)
MULTI_PERSON_PALETTES = (PASTEL_LIMB_COLORS_RGB8, SATURATED_LIMB_COLORS_RGB8)

LIMB_ALPHA = 0.8  # docs/pipeline.md §6.1: every capsule's alpha; hit pixels get alpha 204

# --- 2D overlay (docs/pipeline.md §7) ------------------------------------------------------------

CHEEK_LIMB_COLORS_RGB8 = (  # before the canvas is dimmed by CHEEK_DIM
    (85, 0, 255),    # nose -> R eye
    (170, 0, 255),   # R eye -> R ear
    (255, 0, 255),   # nose -> L eye
    (255, 0, 170),   # L eye -> L ear
)
CHEEK_DIM = 0.6  # the cheek strokes' canvas is multiplied by this and truncated
CHEEK_POINT_COLORS_RGB8 = (  # by ``joints.CHEEK_POINTS``: nose, R eye, L eye, R ear, L ear
    (255, 0, 0),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 170),
    (255, 0, 85),
)
HAND_POINT_COLOR_RGB8 = (0, 0, 255)      # blue dots on hand keypoints
FACE_POINT_COLOR_RGB8 = (255, 255, 255)  # white dots on eyebrows, eyes, mouth


def shader_rgba(rgb8) -> np.ndarray:
    """Capsule shader colour of 8-bit base colours: RGB/300 + 0.15, alpha 0.8 (docs/pipeline.md
    §6.1).

    Args:
        rgb8: (..., 3) ints 0-255.

    Returns:
        (..., 4) float32 RGBA, RGB in [0.15, 1.0].
    """
    rgb = np.asarray(rgb8, dtype=np.float64) / 300.0 + 0.15
    alpha = np.full(rgb.shape[:-1] + (1,), LIMB_ALPHA)
    return np.concatenate([rgb, alpha], axis=-1).astype(np.float32)


# People after the reference's two (§10) get palettes made from the saturated one by changing
# only saturation and brightness, so every limb keeps its hue (the colour family SCAIL reads as
# "which limb"): (saturation scale, value scale) per extra person, then the same again with the
# hue turned by EXTRA_HUE_STEP_DEG per round. Chosen so that the palettes of 8 people are
# pairwise distinct (tests/protocol/test_joints_palette.py measures it).
EXTRA_PALETTE_SV = ((1.0, 0.55), (0.45, 0.9), (1.0, 0.35), (0.3, 0.65))
EXTRA_HUE_STEP_DEG = 20.0


def limb_colors_rgb8(person: int, num_people: int) -> tuple:
    """8-bit limb palette of one person: the default for one person; with several, the
    reference's pastel and saturated palettes (§10) for persons 0 and 1, then generated ones
    (:func:`extra_palette_rgb8`) for persons 2, 3, ...

    Returns:
        17 (R, G, B) int tuples by limb index of ``joints.OPENPOSE18_LIMBS``.
    """
    if num_people <= 1:
        return LIMB_COLORS_RGB8
    if person < len(MULTI_PERSON_PALETTES):
        return MULTI_PERSON_PALETTES[person]
    return extra_palette_rgb8(person - len(MULTI_PERSON_PALETTES))


def extra_palette_rgb8(index: int) -> tuple:
    """The ``index``-th generated palette (person 2 + index): the saturated palette with its
    saturation and brightness scaled by ``EXTRA_PALETTE_SV`` and, from the second round on, its
    hue turned by ``EXTRA_HUE_STEP_DEG`` per round."""
    s_scale, v_scale = EXTRA_PALETTE_SV[index % len(EXTRA_PALETTE_SV)]
    hue_turn = (index // len(EXTRA_PALETTE_SV)) * EXTRA_HUE_STEP_DEG / 360.0
    hsv = rgb_to_hsv(np.asarray(SATURATED_LIMB_COLORS_RGB8, np.float64) / 255.0)
    hsv[:, 0] = (hsv[:, 0] + hue_turn) % 1.0
    hsv[:, 1] *= s_scale
    hsv[:, 2] *= v_scale
    rgb = np.round(hsv_to_rgb(hsv) * 255.0).astype(int)
    return tuple(tuple(int(c) for c in color) for color in rgb)


def rgb_to_hsv(rgb) -> np.ndarray:
    """RGB in [0, 1] to HSV in [0, 1] (hexcone model; the inverse of :func:`hsv_to_rgb`)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(-1)
    delta = v - rgb.min(-1)
    s = np.where(v > 0, delta / np.where(v > 0, v, 1.0), 0.0)
    safe = np.where(delta > 0, delta, 1.0)
    h = np.where(v == r, (g - b) / safe, np.where(v == g, 2.0 + (b - r) / safe,
                                                  4.0 + (r - g) / safe))
    h = np.where(delta > 0, (h / 6.0) % 1.0, 0.0)
    return np.stack([h, s, v], axis=-1)


def hsv_to_rgb(hsv) -> np.ndarray:
    """HSV in [0, 1] to RGB in [0, 1] (the standard hexcone model), vectorised over (..., 3)."""
    hsv = np.asarray(hsv, dtype=np.float64)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    sector = np.floor(h * 6.0)
    frac = h * 6.0 - sector
    p, q, t = v * (1 - s), v * (1 - s * frac), v * (1 - s * (1 - frac))
    sector = sector.astype(int) % 6
    choices = [
        np.stack([v, t, p], -1), np.stack([q, v, p], -1), np.stack([p, v, t], -1),
        np.stack([p, q, v], -1), np.stack([t, p, v], -1), np.stack([v, p, q], -1),
    ]
    out = np.zeros(hsv.shape, dtype=np.float64)
    for k, rgb in enumerate(choices):
        out = np.where((sector == k)[..., None], rgb, out)
    return out


def hand_edge_colors_rgb8(num_edges: int = 20) -> np.ndarray:
    """Rainbow colours of the hand edges: HSV(e / num_edges, 1, 1) * 255, rounded (docs/pipeline.md
    §7).

    Returns:
        (num_edges, 3) uint8 RGB.
    """
    hues = np.arange(num_edges, dtype=np.float64) / num_edges
    hsv = np.stack([hues, np.ones_like(hues), np.ones_like(hues)], axis=-1)
    return np.round(hsv_to_rgb(hsv) * 255.0).astype(np.uint8)
