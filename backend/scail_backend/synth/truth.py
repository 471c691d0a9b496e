"""Ground truth of a synthetic clip as a :class:`PoseSequence` (one person).

* ``joints3d``: the 24 evaluated pose-bone heads of the figure's SMPL-24 armature, OpenCV camera
  frame, millimetres (exact; these joints *are* the figure's skeleton).
* ``kp2d`` (whole-body 134, pixels), exact projections through ``K`` of:
  OpenPose-18 body: shoulders, elbows, wrists, hips, knees and ankles = the SMPL joints of the same
  name (so the hips are SMPL's, inside the pelvis, narrower than a 2D detector's hip points);
  neck = midpoint of the two projected shoulders (the OpenPose/DWPose convention); nose, eyes and
  ears = the nose tip, pupil centres and ear centres of the figure's mesh.
  Feet: big toe, small toe and heel points on the shoes. Hands: the wrist joint, then four points
  along each finger's axis (base, 1/3, 2/3, tip). Face-68: NaN (the face has no such landmarks).
  Occlusion is not modelled: every point is given, visible or not.
* ``kp2d_score``: 1 where a point is given, NaN elsewhere.
* ``bbox``: the projected skinned mesh's extent, clipped to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scail_protocol import joints as J
from scail_protocol.camera import blender_to_camera, project
from scail_protocol.sequence import PoseSequence

from . import figure

ESTIMATOR_NAME = "synthetic_truth"
_FACE_POINTS = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


@dataclass(frozen=True)
class LandmarkTable:
    """Points rigidly attached to bones: bones (L,) int64, rest_m (L, 3) body frame metres."""

    names: tuple
    bones: np.ndarray
    rest_m: np.ndarray

    def index(self, name: str) -> int:
        return self.names.index(name)


def landmark_table(body=None) -> LandmarkTable:
    """Face points, the 6 feet points (FEET_NAMES order), then 21 left and 21 right hand points.

    ``body``: the body type (:mod:`.bodies`) whose rest landmarks are listed; None = average.
    """
    names, bones, points = [], [], []
    face = figure.face_landmarks(body)
    for name in _FACE_POINTS:
        names.append(name)
        bones.append(J.SMPL24["head"])
        points.append(face[name])
    feet = {**figure.foot_landmarks("left", body), **figure.foot_landmarks("right", body)}
    for name in J.FEET_NAMES:
        bone, point = feet[name]
        names.append(name)
        bones.append(J.SMPL24[bone])
        points.append(point)
    for side in ("left", "right"):
        for k, (bone, point) in enumerate(figure.hand_landmarks(side, body)):
            names.append(f"{side}_hand_{k}")
            bones.append(J.SMPL24[bone])
            points.append(point)
    return LandmarkTable(tuple(names), np.array(bones, np.int64), np.array(points, np.float64))


def posed_landmarks(table: LandmarkTable, skinning: np.ndarray) -> np.ndarray:
    """(L, 3) world positions (metres) of the landmarks under (24, 4, 4) skinning matrices."""
    m = skinning[table.bones]
    return np.einsum("lij,lj->li", m[:, :3, :3], table.rest_m) + m[:, :3, 3]


def kp2d_from_truth(joints_mm: np.ndarray, landmarks_mm: np.ndarray, table: LandmarkTable,
                    K: np.ndarray) -> np.ndarray:
    """(T, 134, 2) float32 whole-body points (module docstring) from camera-frame points.

    Args:
        joints_mm: (T, 24, 3) camera frame, mm.
        landmarks_mm: (T, L, 3) camera frame, mm, in ``table`` order.
        K: (3, 3) intrinsics.
    """
    num = joints_mm.shape[0]
    joints_px, marks_px = project(joints_mm, K), project(landmarks_mm, K)
    out = np.full((num, J.NUM_WHOLEBODY, 2), np.nan)
    for i, name in enumerate(J.OPENPOSE18_NAMES):
        if name in _FACE_POINTS:
            out[:, i] = marks_px[:, table.index(name)]
        elif name == "neck":
            continue
        else:
            out[:, i] = joints_px[:, J.SMPL24[name]]
    out[:, J.OPENPOSE18["neck"]] = 0.5 * (out[:, J.OPENPOSE18["left_shoulder"]]
                                          + out[:, J.OPENPOSE18["right_shoulder"]])
    for k, name in enumerate(J.FEET_NAMES):
        out[:, J.FEET.start + k] = marks_px[:, table.index(name)]
    for side, block in (("left", J.LEFT_HAND), ("right", J.RIGHT_HAND)):
        first = table.index(f"{side}_hand_0")
        out[:, block] = marks_px[:, first:first + 21]
    return out.astype(np.float32)


def bbox_from_vertices(vertices_mm: np.ndarray, K: np.ndarray, size) -> np.ndarray:
    """(4,) x1, y1, x2, y2 of the projected vertices, clipped to the image; NaN if none project."""
    px = project(vertices_mm, K)
    px = px[np.isfinite(px).all(-1)]
    if len(px) == 0:
        return np.full(4, np.nan)
    height, width = size
    lo, hi = px.min(0), px.max(0)
    box = np.array([lo[0], lo[1], hi[0], hi[1]])
    return np.clip(box, 0.0, [width - 1, height - 1, width - 1, height - 1])


def build_sequence(joints_world_m: np.ndarray, landmarks_world_m: np.ndarray,
                   bboxes: np.ndarray, table: LandmarkTable, K: np.ndarray, size, fps: float,
                   meta: dict) -> PoseSequence:
    """The truth PoseSequence from per-frame Blender-world positions.

    Args:
        joints_world_m: (T, 24, 3) Blender world, metres (camera at the origin looking down +Y).
        landmarks_world_m: (T, L, 3) Blender world, metres, ``table`` order.
        bboxes: (T, 4) pixels.
        K, size, fps, meta: as PoseSequence.
    """
    joints_mm = blender_to_camera(joints_world_m)
    kp2d = kp2d_from_truth(joints_mm, blender_to_camera(landmarks_world_m), table, K)
    score = np.where(np.isfinite(kp2d).all(-1), 1.0, np.nan).astype(np.float32)
    return PoseSequence(
        fps=fps, size=tuple(size), K=K,
        joints3d=joints_mm[None].astype(np.float32), kp2d=kp2d[None], kp2d_score=score[None],
        bbox=np.asarray(bboxes, np.float32)[None], track_id=np.zeros(1, np.int64),
        meta=dict(meta, estimator=ESTIMATOR_NAME),
    )
