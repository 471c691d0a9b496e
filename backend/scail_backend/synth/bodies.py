"""Body types of the synthetic figure: one rest figure, reshaped per bone.

The figure of :mod:`.figure` and :mod:`.skeleton` is an adult of about 1.74 m ("average"). A
:class:`BodyType` reshapes every rest-pose point of it — joints, bone tails, mesh vertices,
landmarks — so that benchmarks can score an estimator on bodies it was not tuned on.

The reshape works bone by bone (body frame, metres). Bone ``b`` runs from its joint ``J[b]`` to
its main child (or to its tail for a leaf). A point ``p`` carried by bone ``b`` goes to::

    p' = J'[b] + M_b (p - J[b]),    M_b = g_b I + (l_b - g_b) d_b d_bᵀ

with ``d_b`` the bone's unit direction, ``l_b`` its length factor and ``g_b`` its girth factor;
a point carried by two bones (the torso blends along the spine) takes the weighted mean. Joints
follow the same rule from their parent (``J'[j] = J'[p] + M_p (J[j] - J[p])``), so limbs stay
attached. Finally everything is scaled by ``height`` about the origin (the soles' plane stays
z = 0 up to that scale; motions stand the figure on the floor frame by frame anyway).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scail_protocol.errors import ScailError
from scail_protocol.joints import SMPL24, SMPL24_NAMES, SMPL24_PARENTS

NUM_JOINTS = 24


@dataclass(frozen=True)
class BodyType:
    """Proportions and look of one synthetic body (factors relative to the average figure)."""

    name: str
    height: float = 1.0      # overall scale
    legs: float = 1.0        # thigh and shin length
    arms: float = 1.0        # upper arm and forearm length
    torso: float = 1.0       # spine and neck length
    girth: float = 1.0       # thickness of limbs and torso, width of hips and shoulders
    head: float = 1.0        # head size
    long_hair: bool = False
    colors: dict = field(default_factory=dict)  # overrides of figure.COLORS_SRGB8 (sRGB 8 bit)
    description: str = ""

    @property
    def is_default(self) -> bool:
        return (self.height, self.legs, self.arms, self.torso, self.girth, self.head) == (1,) * 6


LIBRARY = {body.name: body for body in (
    BodyType("average", description="average adult: about 1.74 m"),
    BodyType("child", height=0.70, legs=0.88, arms=0.92, torso=1.02, girth=0.92, head=1.30,
             colors={"shirt": (200, 60, 52), "trousers": (40, 70, 130), "hair": (150, 100, 50)},
             description="child-like: about 1.25 m, large head, short limbs"),
    BodyType("short_heavy", height=0.92, legs=0.90, arms=0.94, torso=1.0, girth=1.40,
             long_hair=True,
             colors={"shirt": (60, 130, 70), "trousers": (110, 90, 70), "hair": (30, 26, 24)},
             description="short and heavy: about 1.55 m, wide torso and thick limbs"),
    BodyType("tall_slim", height=1.10, legs=1.04, arms=1.04, torso=1.02, girth=0.78,
             colors={"shirt": (225, 220, 205), "trousers": (30, 32, 38), "hair": (200, 170, 110)},
             description="tall and slim: about 1.95 m, narrow"),
    BodyType("long_legged", height=1.0, legs=1.20, arms=1.06, torso=0.90, girth=0.90,
             long_hair=True,
             colors={"shirt": (120, 60, 140), "trousers": (70, 110, 150), "hair": (95, 50, 30)},
             description="long legs and arms, short torso"),
    BodyType("stocky", height=0.96, legs=0.86, arms=0.96, torso=1.08, girth=1.22,
             colors={"shirt": (70, 90, 160), "trousers": (60, 60, 60), "hair": (60, 40, 30)},
             description="stocky: about 1.63 m, short legs, long torso, broad"),
    BodyType("lanky", height=1.05, legs=1.12, arms=1.10, torso=0.95, girth=0.85,
             long_hair=True,
             colors={"shirt": (180, 150, 60), "trousers": (90, 50, 40), "hair": (20, 20, 20)},
             description="lanky: about 1.90 m, long limbs, narrow"),
)}
TUNING_BODIES = ("average", "child", "stocky", "lanky")  # the rest are held out from tuning
BODIES = tuple(LIBRARY)
DEFAULT_BODY = "average"


def get_body(body) -> BodyType:
    """``body`` as a :class:`BodyType`: a name from :data:`BODIES`, a BodyType, or None (average).

    Raises:
        ScailError: unknown name (the message lists the valid ones).
    """
    if body is None:
        return LIBRARY[DEFAULT_BODY]
    if isinstance(body, BodyType):
        return body
    try:
        return LIBRARY[str(body)]
    except KeyError:
        raise ScailError(f"unknown body type {body!r}; choose one of: {', '.join(BODIES)}") from None


def _factors(body: BodyType) -> tuple:
    """Per-bone (length, girth) factors, each (24,) float64."""
    length, girth = np.ones(NUM_JOINTS), np.ones(NUM_JOINTS)
    groups = {
        "torso": ("pelvis", "spine1", "spine2", "spine3", "neck"),
        "legs": ("left_hip", "right_hip", "left_knee", "right_knee"),
        "arms": ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow"),
    }
    for attr, names in groups.items():
        for name in names:
            length[SMPL24[name]] = getattr(body, attr)
            girth[SMPL24[name]] = body.girth
    for name in ("left_collar", "right_collar"):
        girth[SMPL24[name]] = body.girth
        length[SMPL24[name]] = body.girth  # shoulder width follows the body's breadth
    head = SMPL24["head"]
    length[head] = girth[head] = body.head
    return length, girth


def bone_matrices(rest_joints: np.ndarray, rest_tails: np.ndarray, body: BodyType) -> np.ndarray:
    """(24, 3, 3) ``M_b`` of the module docstring for the average figure's rest pose."""
    direction = rest_tails - rest_joints
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    length, girth = _factors(body)
    outer = direction[:, :, None] * direction[:, None, :]
    return girth[:, None, None] * np.eye(3) + (length - girth)[:, None, None] * outer


def reshape_joints(rest_joints: np.ndarray, matrices: np.ndarray, body: BodyType) -> np.ndarray:
    """(24, 3) the body's rest joints from the average ones (module docstring), metres."""
    out = np.empty_like(rest_joints)
    out[0] = rest_joints[0]
    for j in range(1, NUM_JOINTS):
        p = SMPL24_PARENTS[j]
        out[j] = out[p] + matrices[p] @ (rest_joints[j] - rest_joints[p])
    return out * body.height


def reshape_points(points: np.ndarray, bones: np.ndarray, weights, rest_joints: np.ndarray,
                   new_joints: np.ndarray, matrices: np.ndarray, body: BodyType) -> np.ndarray:
    """Reshape rest-pose points carried by bones.

    Args:
        points: (N, 3) average-figure rest positions, body frame, metres.
        bones: (N,) or (N, K) int joint indices carrying each point.
        weights: None (one bone each) or (N, K) weights summing to 1.
        rest_joints, new_joints: (24, 3) average and reshaped rest joints (``new_joints``
            already includes the height scale).
        matrices: (24, 3, 3) from :func:`bone_matrices`.

    Returns:
        (N, 3) float64 reshaped positions, metres.
    """
    points = np.asarray(points, np.float64)
    bones = np.asarray(bones, np.int64)
    if bones.ndim == 1:
        bones = bones[:, None]
        weights = np.ones(bones.shape)
    weights = np.asarray(weights, np.float64)
    local = points[:, None, :] - rest_joints[bones]                    # (N, K, 3)
    moved = np.einsum("nkij,nkj->nki", matrices[bones], local)
    placed = new_joints[bones] / body.height + moved                   # before the height scale
    return np.einsum("nk,nki->ni", weights, placed) * body.height
