"""Index tables from MediaPipe Holistic's landmarks to our layouts (SMPL-24, whole-body-134).

MediaPipe Pose has 33 landmarks ("left"/"right" are the subject's own, as everywhere in this
project), the face mesh 468, each hand 21 in the same order as Hand-21 (docs/pipeline.md §0.1).

A target point is an affine combination of source landmarks, written as ``((index, weight), ...)``
with weights summing to 1; :func:`combination_matrix` turns a table into a (targets, sources)
matrix so one ``M @ points`` maps a whole frame, in 2D pixels and 3D metres alike. An empty
combination means "no source": the point is missing (NaN).

These tables serve only the MediaPipe estimator (the add-on never sees MediaPipe), so they live
here rather than in ``scail_protocol.joints``; the target orders are the protocol's.
"""

from __future__ import annotations

import numpy as np

from scail_protocol import joints as J

NUM_POSE = 33
NUM_FACE_MESH = 468
NUM_HAND = 21

# --- MediaPipe Pose landmarks (subject's left/right) ----------------------------------------------
NOSE = 0
LEFT_EYE_INNER, LEFT_EYE, LEFT_EYE_OUTER = 1, 2, 3
RIGHT_EYE_INNER, RIGHT_EYE, RIGHT_EYE_OUTER = 4, 5, 6
LEFT_EAR, RIGHT_EAR = 7, 8
MOUTH_LEFT, MOUTH_RIGHT = 9, 10
LEFT_SHOULDER, RIGHT_SHOULDER = 11, 12
LEFT_ELBOW, RIGHT_ELBOW = 13, 14
LEFT_WRIST, RIGHT_WRIST = 15, 16
LEFT_PINKY, RIGHT_PINKY = 17, 18      # first knuckle (MCP) of the little finger
LEFT_INDEX, RIGHT_INDEX = 19, 20      # first knuckle (MCP) of the index finger
LEFT_THUMB, RIGHT_THUMB = 21, 22
LEFT_HIP, RIGHT_HIP = 23, 24          # on the outside of the pelvis, wider than SMPL's hip joints
LEFT_KNEE, RIGHT_KNEE = 25, 26
LEFT_ANKLE, RIGHT_ANKLE = 27, 28
LEFT_HEEL, RIGHT_HEEL = 29, 30
LEFT_FOOT_INDEX, RIGHT_FOOT_INDEX = 31, 32  # tip of the foot (big/second toe)

# --- SMPL joint placement ------------------------------------------------------------------------
# Every derived joint is a landmark (or a midpoint) plus multiples of the person's own measured
# vectors, so it scales with that person's widths and lengths rather than by fixed offsets:
#   trunk = shoulder midpoint - hip midpoint, hip half-width = (left hip - right hip) / 2,
#   shoulder half-width likewise, head = ear midpoint - shoulder midpoint.
# The coefficients are least-squares fits of the 2D projections of the synthetic figure's exact
# SMPL joints onto those vectors, on the "average" and "child" body types ONLY (motions wave,
# walk, squat x cameras front, three-quarter; synth.bodies); fitted on each of the two alone they
# agree within ~0.03. The other body types (short and heavy, tall and slim, long-legged) are kept
# for held-out scoring (bench/accuracy.py --bodies all). Depth comes from the same combination
# of MediaPipe's world landmarks, so e.g. the head's pull towards the eyes also moves it forward.
SMPL_HIP_WIDTH_RATIO = 0.74   # SMPL hips at 0.74 of MediaPipe's hip-landmark width ...
HIP_DROP_ALONG_TRUNK = 0.083  # ... and 8 % of the trunk below them (the landmarks sit high)
NECK_FROM_SHOULDERS = 0.15    # neck: 15 % of the way from the shoulder midpoint to the ear midpoint
HEAD_FROM_SHOULDERS = 0.35    # head: 35 % of the way shoulder midpoint -> ear midpoint, ...
HEAD_TOWARDS_EYES = 0.6       # ... then 0.6 x (eye midpoint - ear midpoint) forward: SMPL's
                              # head joint sits ~5 cm in front of the ears' line
# Shoulders, elbows, wrists and knees are MediaPipe's own landmarks: what the renderer draws
# between them stays on the image landmarks (a 2.7 %-of-trunk drop of the shoulders fitted
# here but gained only 0.1 mm PA-MPJPE).
# Pelvis and spine on the hip-mid -> shoulder-mid line (fractions of the landmark trunk).
PELVIS_ALONG_TRUNK = 0.09
SPINE1_ALONG_TRUNK = 0.31
SPINE2_ALONG_TRUNK = 0.566
SPINE3_ALONG_TRUNK = 0.68
# Collars: 40 % of the shoulder half-width out from the shoulder midpoint and 10 % of the trunk
# below it (SMPL's collar joints lie a few cm below the neck-shoulder line, 0.4 of the way out).
COLLAR_FROM_MIDLINE = 0.40
COLLAR_DROP_ALONG_TRUNK = 0.10
# Feet and ankles: SMPL's ankle sits a little towards the heel from MediaPipe's ankle landmark,
# its foot joint (toe base) 77 % of the way to the foot tip and raised towards the heel line.
ANKLE_TOWARDS_HEEL = 0.27
FOOT_TOWARDS_TIP = 0.77
FOOT_TOWARDS_HEEL = 0.44
HAND_FROM_WRIST = 1.1         # SMPL hand joint: 1.1 x the wrist -> knuckle-middle vector


def _mid(a: int, b: int, along: float = 0.5):
    """The point ``along`` of the way from landmark a to landmark b."""
    return ((a, 1.0 - along), (b, along))


def _scale(combination, factor: float):
    return tuple((i, w * factor) for i, w in combination)


def _lerp(start, end, along: float):
    """The point ``along`` of the way from combination ``start`` to combination ``end``."""
    return _scale(start, 1.0 - along) + _scale(end, along)


def _vector(start, end, factor: float = 1.0):
    """A displacement (weights summing to 0): ``factor`` x (end - start)."""
    return _scale(end, factor) + _scale(start, -factor)


_HIP_MID = _mid(LEFT_HIP, RIGHT_HIP)
_SHOULDER_MID = _mid(LEFT_SHOULDER, RIGHT_SHOULDER)
_EAR_MID = _mid(LEFT_EAR, RIGHT_EAR)
_EYE_MID = _mid(LEFT_EYE, RIGHT_EYE)
_NECK = _lerp(_SHOULDER_MID, _EAR_MID, NECK_FROM_SHOULDERS)
_SMPL_HIP_SIDE = 0.5 + SMPL_HIP_WIDTH_RATIO / 2.0  # weight of the same-side hip landmark
_HIP_DROP = _vector(_SHOULDER_MID, _HIP_MID, HIP_DROP_ALONG_TRUNK)
_COLLAR_DROP = _vector(_SHOULDER_MID, _HIP_MID, COLLAR_DROP_ALONG_TRUNK)
_COLLAR_SIDE = 0.5 + COLLAR_FROM_MIDLINE / 2.0  # weight of the same-side shoulder landmark


def _trunk(along: float):
    return _lerp(_HIP_MID, _SHOULDER_MID, along)


def _ankle(ankle: int, heel: int):
    return _mid(ankle, heel, ANKLE_TOWARDS_HEEL)


def _foot(ankle: int, tip: int, heel: int):
    return (((ankle, 1.0 - FOOT_TOWARDS_TIP - FOOT_TOWARDS_HEEL), (tip, FOOT_TOWARDS_TIP),
             (heel, FOOT_TOWARDS_HEEL)))


def _hand(wrist: int, pinky: int, index: int):
    return ((wrist, 1.0 - HAND_FROM_WRIST), (pinky, HAND_FROM_WRIST / 2),
            (index, HAND_FROM_WRIST / 2))


SMPL24_FROM_MEDIAPIPE = (
    _trunk(PELVIS_ALONG_TRUNK),                                     # 0 pelvis
    _mid(RIGHT_HIP, LEFT_HIP, _SMPL_HIP_SIDE) + _HIP_DROP,          # 1 left_hip
    _mid(LEFT_HIP, RIGHT_HIP, _SMPL_HIP_SIDE) + _HIP_DROP,          # 2 right_hip
    _trunk(SPINE1_ALONG_TRUNK),                                     # 3 spine1
    ((LEFT_KNEE, 1.0),),                                            # 4 left_knee
    ((RIGHT_KNEE, 1.0),),                                           # 5 right_knee
    _trunk(SPINE2_ALONG_TRUNK),                                     # 6 spine2
    _ankle(LEFT_ANKLE, LEFT_HEEL),                                  # 7 left_ankle
    _ankle(RIGHT_ANKLE, RIGHT_HEEL),                                # 8 right_ankle
    _trunk(SPINE3_ALONG_TRUNK),                                     # 9 spine3
    _foot(LEFT_ANKLE, LEFT_FOOT_INDEX, LEFT_HEEL),                  # 10 left_foot
    _foot(RIGHT_ANKLE, RIGHT_FOOT_INDEX, RIGHT_HEEL),               # 11 right_foot
    _NECK,                                                          # 12 neck
    _mid(RIGHT_SHOULDER, LEFT_SHOULDER, _COLLAR_SIDE) + _COLLAR_DROP,   # 13 left_collar
    _mid(LEFT_SHOULDER, RIGHT_SHOULDER, _COLLAR_SIDE) + _COLLAR_DROP,   # 14 right_collar
    _lerp(_SHOULDER_MID, _EAR_MID, HEAD_FROM_SHOULDERS)
    + _vector(_EAR_MID, _EYE_MID, HEAD_TOWARDS_EYES),               # 15 head
    ((LEFT_SHOULDER, 1.0),),                                        # 16 left_shoulder
    ((RIGHT_SHOULDER, 1.0),),                                       # 17 right_shoulder
    ((LEFT_ELBOW, 1.0),),                                           # 18 left_elbow
    ((RIGHT_ELBOW, 1.0),),                                          # 19 right_elbow
    ((LEFT_WRIST, 1.0),),                                           # 20 left_wrist
    ((RIGHT_WRIST, 1.0),),                                          # 21 right_wrist
    _hand(LEFT_WRIST, LEFT_PINKY, LEFT_INDEX),                      # 22 left_hand (knuckles)
    _hand(RIGHT_WRIST, RIGHT_PINKY, RIGHT_INDEX),                   # 23 right_hand
)

# OpenPose-18 body (docs/pipeline.md §0.1) with the neck at the shoulders' midpoint, as DWPose
# (§2.3).
OPENPOSE18_FROM_MEDIAPIPE = (
    ((NOSE, 1.0),),             # 0 nose
    _SHOULDER_MID,              # 1 neck = shoulder midpoint
    ((RIGHT_SHOULDER, 1.0),),   # 2 right_shoulder
    ((RIGHT_ELBOW, 1.0),),      # 3 right_elbow
    ((RIGHT_WRIST, 1.0),),      # 4 right_wrist
    ((LEFT_SHOULDER, 1.0),),    # 5 left_shoulder
    ((LEFT_ELBOW, 1.0),),       # 6 left_elbow
    ((LEFT_WRIST, 1.0),),       # 7 left_wrist
    ((RIGHT_HIP, 1.0),),        # 8 right_hip (COCO hips are outer hip points too)
    ((RIGHT_KNEE, 1.0),),       # 9 right_knee
    ((RIGHT_ANKLE, 1.0),),      # 10 right_ankle
    ((LEFT_HIP, 1.0),),         # 11 left_hip
    ((LEFT_KNEE, 1.0),),        # 12 left_knee
    ((LEFT_ANKLE, 1.0),),       # 13 left_ankle
    ((RIGHT_EYE, 1.0),),        # 14 right_eye
    ((LEFT_EYE, 1.0),),         # 15 left_eye
    ((RIGHT_EAR, 1.0),),        # 16 right_ear
    ((LEFT_EAR, 1.0),),         # 17 left_ear
)

# Whole-body feet 18-23 (scail_protocol.joints.FEET_NAMES). MediaPipe has one point at the tip of
# the foot (between the big and second toe) and the heel; it has no small toe, so that point is
# left missing rather than invented.
FEET_FROM_MEDIAPIPE = (
    ((LEFT_FOOT_INDEX, 1.0),),   # 18 left_big_toe <- tip of the foot
    (),                          # 19 left_small_toe: no MediaPipe source (missing)
    ((LEFT_HEEL, 1.0),),         # 20 left_heel
    ((RIGHT_FOOT_INDEX, 1.0),),  # 21 right_big_toe
    (),                          # 22 right_small_toe: no MediaPipe source (missing)
    ((RIGHT_HEEL, 1.0),),        # 23 right_heel
)

# Face-68 (iBUG 300-W order, docs/pipeline.md §0.1) picked from the 468-point face mesh. "Right" is
# the subject's right = the image's left for a face looking at the camera. Picked along the mesh's
# own contours (face oval, brows, eye lids, nose, lips) at iBUG's spacing, and checked by drawing
# both on footage.
FACE68_FROM_FACEMESH = (
    # 0-16 jaw: subject's right (image left) at eye level, down to the chin (8), up the other side
    234, 93, 132, 58, 172, 136, 150, 176, 152, 400, 379, 365, 397, 288, 361, 323, 454,
    # 17-21 right eyebrow, outer -> inner (upper brow contour)
    70, 63, 105, 66, 107,
    # 22-26 left eyebrow, inner -> outer
    336, 296, 334, 293, 300,
    # 27-30 nose bridge, top (between the eyes) -> tip
    168, 197, 5, 1,
    # 31-35 lower nose, right alar base -> subnasale -> left alar base
    98, 97, 2, 326, 327,
    # 36-41 right eye: outer corner, upper lid (2), inner corner, lower lid (2)
    33, 160, 158, 133, 153, 144,
    # 42-47 left eye: inner corner, upper lid (2), outer corner, lower lid (2)
    362, 385, 387, 263, 373, 380,
    # 48-59 outer lips: right corner, upper lip -> left corner, lower lip back
    61, 40, 37, 0, 267, 270, 291, 321, 314, 17, 84, 91,
    # 60-67 inner lips: right corner, upper (3), left corner, lower (3)
    78, 81, 13, 311, 308, 402, 14, 178,
)


def combination_matrix(table, num_sources: int) -> np.ndarray:
    """(len(table), num_sources) float64 weights; rows of empty combinations are NaN.

    ``matrix @ points`` maps (num_sources, D) landmarks to (len(table), D) targets, and a missing
    target comes out NaN.
    """
    matrix = np.zeros((len(table), num_sources))
    for row, combination in enumerate(table):
        if not combination:
            matrix[row] = np.nan
        for index, weight in combination:
            matrix[row, index] += weight
    return matrix


def source_mask(table, num_sources: int) -> np.ndarray:
    """(len(table), num_sources) bool: which landmarks each target uses (for its score)."""
    mask = np.zeros((len(table), num_sources), dtype=bool)
    for row, combination in enumerate(table):
        for index, _ in combination:
            mask[row, index] = True
    return mask

