"""Joint tables: SMPL-24, OpenPose-18, the whole-body-134 layout, hands and face.

Every joint order in the project is defined here and nowhere else (docs/pipeline.md §0.1, §2.3, §5).
"Left" and "right" are always the subject's own.
"""

from __future__ import annotations

import numpy as np

MISSING = -1  # placeholder index in mapping tables: "no source joint"

# --- SMPL-24 (NLF ``joints3d_nonparam`` order) -------------------------------------------------

SMPL24_NAMES = (
    "pelvis",       # 0
    "left_hip",     # 1
    "right_hip",    # 2
    "spine1",       # 3
    "left_knee",    # 4
    "right_knee",   # 5
    "spine2",       # 6
    "left_ankle",   # 7
    "right_ankle",  # 8
    "spine3",       # 9
    "left_foot",    # 10
    "right_foot",   # 11
    "neck",         # 12
    "left_collar",  # 13
    "right_collar", # 14
    "head",         # 15
    "left_shoulder",  # 16
    "right_shoulder", # 17
    "left_elbow",   # 18
    "right_elbow",  # 19
    "left_wrist",   # 20
    "right_wrist",  # 21
    "left_hand",    # 22
    "right_hand",   # 23
)

SMPL24_PARENTS = (
    MISSING,  # 0 pelvis is the root
    0,   # 1 left_hip
    0,   # 2 right_hip
    0,   # 3 spine1
    1,   # 4 left_knee
    2,   # 5 right_knee
    3,   # 6 spine2
    4,   # 7 left_ankle
    5,   # 8 right_ankle
    6,   # 9 spine3
    7,   # 10 left_foot
    8,   # 11 right_foot
    9,   # 12 neck
    9,   # 13 left_collar
    9,   # 14 right_collar
    12,  # 15 head
    13,  # 16 left_shoulder
    14,  # 17 right_shoulder
    16,  # 18 left_elbow
    17,  # 19 right_elbow
    18,  # 20 left_wrist
    19,  # 21 right_wrist
    20,  # 22 left_hand
    21,  # 23 right_hand
)

SMPL24 = {name: i for i, name in enumerate(SMPL24_NAMES)}

# --- OpenPose-18 body ---------------------------------------------------------------------------

OPENPOSE18_NAMES = (
    "nose",            # 0
    "neck",            # 1
    "right_shoulder",  # 2
    "right_elbow",     # 3
    "right_wrist",     # 4
    "left_shoulder",   # 5
    "left_elbow",      # 6
    "left_wrist",      # 7
    "right_hip",       # 8
    "right_knee",      # 9
    "right_ankle",     # 10
    "left_hip",        # 11
    "left_knee",       # 12
    "left_ankle",      # 13
    "right_eye",       # 14
    "left_eye",        # 15
    "right_ear",       # 16
    "left_ear",        # 17
)

OPENPOSE18 = {name: i for i, name in enumerate(OPENPOSE18_NAMES)}

# OpenPose-18 index -> SMPL-24 source joint, as the reference renderer builds its 3D array
# (docs/pipeline.md §5). The "nose" slot takes the SMPL *head* joint; eyes and ears have no 3D
# source.
OPENPOSE18_FROM_SMPL24 = (
    15,  # 0 nose <- head
    12,  # 1 neck
    17,  # 2 right_shoulder
    19,  # 3 right_elbow
    21,  # 4 right_wrist
    16,  # 5 left_shoulder
    18,  # 6 left_elbow
    20,  # 7 left_wrist
    2,   # 8 right_hip
    5,   # 9 right_knee
    8,   # 10 right_ankle
    1,   # 11 left_hip
    4,   # 12 left_knee
    7,   # 13 left_ankle
    MISSING,  # 14 right_eye
    MISSING,  # 15 left_eye
    MISSING,  # 16 right_ear
    MISSING,  # 17 left_ear
)

# OpenPose-18 index -> COCO-17 index (docs/pipeline.md §2.3); the neck is synthesised from the
# shoulders.
OPENPOSE18_FROM_COCO17 = (
    0,   # 0 nose
    MISSING,  # 1 neck = mean of COCO 5 and 6
    6,   # 2 right_shoulder
    8,   # 3 right_elbow
    10,  # 4 right_wrist
    5,   # 5 left_shoulder
    7,   # 6 left_elbow
    9,   # 7 left_wrist
    12,  # 8 right_hip
    14,  # 9 right_knee
    16,  # 10 right_ankle
    11,  # 11 left_hip
    13,  # 12 left_knee
    15,  # 13 left_ankle
    2,   # 14 right_eye
    1,   # 15 left_eye
    4,   # 16 right_ear
    3,   # 17 left_ear
)

# Limbs drawn as 3D capsules, as OpenPose-18 endpoint pairs (docs/pipeline.md §6.1). Colours live in
# ``palette.LIMB_COLORS_RGB8`` with the same index.
OPENPOSE18_LIMBS = (
    (1, 2),    # 0 neck -> right_shoulder
    (1, 5),    # 1 neck -> left_shoulder
    (2, 3),    # 2 right_shoulder -> right_elbow
    (3, 4),    # 3 right_elbow -> right_wrist
    (5, 6),    # 4 left_shoulder -> left_elbow
    (6, 7),    # 5 left_elbow -> left_wrist
    (1, 8),    # 6 neck -> right_hip
    (8, 9),    # 7 right_hip -> right_knee
    (9, 10),   # 8 right_knee -> right_ankle
    (1, 11),   # 9 neck -> left_hip
    (11, 12),  # 10 left_hip -> left_knee
    (12, 13),  # 11 left_knee -> left_ankle
    (1, 0),    # 12 neck -> head ("nose" slot)
    (0, 14),   # 13 head -> right_eye
    (14, 16),  # 14 right_eye -> right_ear
    (0, 15),   # 15 head -> left_eye
    (15, 17),  # 16 left_eye -> left_ear
)

# Order in which the reference inserts capsules into its scene: ties in depth go to the earlier.
LIMB_DRAW_ORDER = (0, 2, 3, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)

# Head-orientation strokes of the 2D overlay ("cheek", docs/pipeline.md §7), OpenPose-18 pairs.
CHEEK_LIMBS = (
    (0, 14),   # nose -> right_eye
    (14, 16),  # right_eye -> right_ear
    (0, 15),   # nose -> left_eye
    (15, 17),  # left_eye -> left_ear
)
CHEEK_POINTS = (0, 14, 15, 16, 17)  # OpenPose-18 points drawn as dots

# --- Whole-body-134 (DWPose with the synthesised neck, OpenPose body order) ----------------------

NUM_WHOLEBODY = 134
BODY = slice(0, 18)          # OpenPose-18
FEET = slice(18, 24)         # see FEET_NAMES
FACE = slice(24, 92)         # Face-68 (iBUG 300-W order)
LEFT_HAND = slice(92, 113)   # Hand-21
RIGHT_HAND = slice(113, 134)  # Hand-21

FEET_NAMES = (
    "left_big_toe",    # 18
    "left_small_toe",  # 19
    "left_heel",       # 20
    "right_big_toe",   # 21
    "right_small_toe", # 22
    "right_heel",      # 23
)

# --- Hand-21 ------------------------------------------------------------------------------------
# 0 wrist; thumb 1-4; index 5-8; middle 9-12; ring 13-16; little 17-20 (base -> tip).

HAND21_EDGES = (
    (0, 1), (1, 2), (2, 3), (3, 4),        # thumb
    (0, 5), (5, 6), (6, 7), (7, 8),        # index
    (0, 9), (9, 10), (10, 11), (11, 12),   # middle
    (0, 13), (13, 14), (14, 15), (15, 16), # ring
    (0, 17), (17, 18), (18, 19), (19, 20), # little
)
HAND21_WRIST = 0

# --- Face-68 ------------------------------------------------------------------------------------

FACE68_NOSE_TIP = 30
# Landmarks the overlay draws: eyebrows 17-26, eyes 36-47 and mouth 48-67 (jaw and nose skipped).
FACE68_DRAWN = tuple(range(17, 27)) + tuple(range(36, 68))


def smpl24_to_openpose18(joints_smpl: np.ndarray) -> np.ndarray:
    """Build the reference's OpenPose-18 3D joint array from SMPL-24 joints.

    Args:
        joints_smpl: (..., 24, 3) float, any unit and frame; NaN = missing.

    Returns:
        (..., 18, 3) float32 in the same unit and frame; eyes and ears (14-17) are NaN.
    """
    joints_smpl = np.asarray(joints_smpl)
    if joints_smpl.shape[-2:] != (24, 3):
        raise ValueError(f"joints must be (..., 24, 3), got {joints_smpl.shape}")
    source = np.array(OPENPOSE18_FROM_SMPL24)
    out = joints_smpl[..., np.maximum(source, 0), :].astype(np.float32, copy=True)
    out[..., source == MISSING, :] = np.nan
    return out
