"""The synthetic figure's body: parts, colours and landmark points, in the rest pose.

Everything here is numpy (no bpy): :mod:`.blender_scene` turns the parts into one mesh with a
vertex group per bone. Coordinates are the body frame of :mod:`.skeleton` (metres, X = the
figure's left, Y = behind, Z = up, soles on z = 0, T-pose). Each part moves rigidly with one
SMPL-24 bone (the bone named after the joint at the part's upper end, as in SMPL: the forearm
moves with ``left_elbow``).

Landmarks are points rigidly attached to a bone, used for the 2D ground truth (nose, eyes, ears,
toes, heels, the 21 points of each hand) and for putting the shoes on the floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scail_protocol.joints import SMPL24

from . import bodies
from .shapes import capsule, ellipsoid, loft
from .skeleton import reshape_rest_points, rest_joints

# sRGB colours (8 bit) of the flat Workbench materials.
COLORS_SRGB8 = {
    "skin": (226, 174, 142),
    "skin_shade": (206, 150, 120),
    "shirt": (46, 98, 168),
    "trousers": (58, 60, 72),
    "belt": (70, 46, 30),
    "shoes": (36, 30, 28),
    "hair": (66, 42, 26),
    "eye_white": (246, 246, 240),
    "pupil": (28, 24, 22),
    "brow": (58, 38, 24),
    "lips": (172, 78, 80),
    "prop": (150, 108, 68),
}
MATERIALS = tuple(name for name in COLORS_SRGB8 if name != "prop")


def colors_srgb8(body=None) -> dict:
    """COLORS_SRGB8 with the body type's clothing and hair colours (:mod:`.bodies`)."""
    return {**COLORS_SRGB8, **bodies.get_body(body).colors}


@dataclass(frozen=True)
class Part:
    """One piece of the figure: rigid on one bone, or skinned over two (``weights``)."""

    name: str
    bone: str       # SMPL-24 joint name whose bone moves it (when weights is None)
    material: str   # key of COLORS_SRGB8
    verts: np.ndarray  # (N, 3) float64, body frame, metres (rest pose)
    faces: list        # vertex-index tuples into verts
    weights: tuple = None  # optional ((N, 2) int64 joint indices, (N, 2) float64 weights)


@dataclass(frozen=True)
class FigureMesh:
    """All parts concatenated: what becomes the Blender mesh."""

    verts: np.ndarray          # (N, 3) float64, body frame, metres
    faces: list                # vertex-index tuples
    face_material: np.ndarray  # (F,) int64 index into MATERIALS
    vertex_bones: np.ndarray   # (N, 2) int64 SMPL-24 joint indices moving each vertex
    vertex_weights: np.ndarray  # (N, 2) float64 their weights (sum 1)


J = rest_joints()
# Head: a cranium and a lower face ellipsoid; the face features sit on their front surface.
_CRANIUM = ((0.0, 0.0, 1.620), (0.076, 0.096, 0.112))
_JAW = ((0.0, -0.022, 1.560), (0.060, 0.072, 0.065))
# Shoe: heel and ball centres (move with the ankle) and the toe cap end (moves with the foot).
_SHOE_RADIUS_M = 0.042
_SHOE_ASPECT = 1.15


def _side(point, side: str) -> np.ndarray:
    x, y, z = point
    return np.array((x if side == "left" else -x, y, z), np.float64)


def _face_front_y(x: float, z: float) -> float:
    """y of the front surface of the head (the -Y side) at (x, z), body frame, metres."""
    ys = []
    for (cx, cy, cz), (rx, ry, rz) in (_CRANIUM, _JAW):
        inside = 1.0 - ((x - cx) / rx) ** 2 - ((z - cz) / rz) ** 2
        if inside > 0:
            ys.append(cy - ry * np.sqrt(inside))
    return min(ys)


def _shoe_points(side: str) -> dict:
    ankle, foot = J[SMPL24[f"{side}_ankle"]], J[SMPL24[f"{side}_foot"]]
    heel = np.array((ankle[0], ankle[1] + 0.022, _SHOE_RADIUS_M))
    ball = np.array((foot[0], foot[1], _SHOE_RADIUS_M))
    toe = np.array((foot[0] + (0.004 if side == "left" else -0.004), foot[1] - 0.062, 0.034))
    return {"heel": heel, "ball": ball, "toe": toe}


def _hair_keep(u: np.ndarray) -> np.ndarray:
    # Cap over the top, back and sides; the face (front, below the hairline) and the ears stay bare.
    top = u[:, 2] > 0.38
    back = (u[:, 1] > 0.05) & (u[:, 2] > -0.55)
    ears = (np.abs(u[:, 0]) > 0.72) & (u[:, 2] < 0.30) & (u[:, 1] < 0.45)
    return (top | back) & ~ears


def _long_hair_parts() -> list:
    # Hair falling from the back of the head to below the shoulders; it moves with the head.
    return [Part("hair_long", "head", "hair",
                 *capsule((0.0, 0.080, 1.620), (0.0, 0.095, 1.330), 0.082, 0.060))]


def _head_parts() -> list:
    parts = [
        Part("cranium", "head", "skin", *ellipsoid(*_CRANIUM)),
        Part("jaw", "head", "skin", *ellipsoid(*_JAW)),
        Part("neck", "neck", "skin",
             *capsule((0.0, 0.030, 1.40), (0.0, 0.006, 1.56), 0.050, 0.046)),
        Part("hair", "head", "hair", *ellipsoid((0.0, 0.010, 1.636), (0.085, 0.106, 0.118),
                                                keep=_hair_keep, rings=16, segments=24)),
    ]
    nose_y = _face_front_y(0.0, 1.600)
    parts.append(Part("nose", "head", "skin_shade",
                      *ellipsoid((0.0, nose_y + 0.004, 1.598), (0.011, 0.020, 0.024))))
    mouth_y = _face_front_y(0.0, 1.548)
    parts.append(Part("mouth", "head", "lips",
                      *ellipsoid((0.0, mouth_y + 0.002, 1.548), (0.021, 0.006, 0.0065))))
    for side in ("left", "right"):
        eye = _side((0.031, _face_front_y(0.031, 1.632) + 0.004, 1.632), side)
        parts += [
            Part(f"{side}_eye", "head", "eye_white", *ellipsoid(eye, (0.0145, 0.008, 0.009))),
            Part(f"{side}_pupil", "head", "pupil",
                 *ellipsoid(eye + (0.0, -0.0065, 0.0), (0.0062, 0.0035, 0.0062))),
            Part(f"{side}_brow", "head", "brow",
                 *capsule(_side((0.013, _face_front_y(0.013, 1.654) + 0.001, 1.654), side),
                          _side((0.050, _face_front_y(0.050, 1.656) + 0.001, 1.656), side),
                          0.0042, 0.0034)),
            Part(f"{side}_ear", "head", "skin_shade",
                 *ellipsoid(_side((0.077, 0.010, 1.612), side), (0.011, 0.020, 0.030))),
        ]
    return parts


# Torso cross-sections: (z, half width, half depth, centre y), metres, from crotch to neck.
_TORSO_RINGS = np.array([
    (0.790, 0.070, 0.050, 0.010),
    (0.815, 0.135, 0.090, 0.012),
    (0.860, 0.163, 0.106, 0.012),
    (0.930, 0.160, 0.104, 0.014),
    (1.000, 0.148, 0.098, 0.020),
    (1.060, 0.142, 0.096, 0.024),
    (1.140, 0.150, 0.100, 0.024),
    (1.230, 0.162, 0.108, 0.024),
    (1.310, 0.168, 0.110, 0.026),
    (1.370, 0.166, 0.102, 0.030),
    (1.420, 0.140, 0.086, 0.034),
    (1.450, 0.085, 0.060, 0.034),
    (1.462, 0.050, 0.040, 0.034),
])
# Heights where the torso follows one spine bone fully; it blends between neighbours.
_TORSO_BONE_HEIGHTS = (("pelvis", 0.95), ("spine1", 1.09), ("spine2", 1.21), ("spine3", 1.31))
_WAIST_Z = (0.962, 0.992)  # belt between these heights; trousers below, shirt above


def _torso_weights(verts: np.ndarray):
    """(N, 2) bone indices and (N, 2) weights blending the torso along the spine by height."""
    names = [n for n, _ in _TORSO_BONE_HEIGHTS]
    heights = np.array([h for _, h in _TORSO_BONE_HEIGHTS])
    z = np.clip(verts[:, 2], heights[0], heights[-1])
    k = np.clip(np.searchsorted(heights, z, side="right") - 1, 0, len(heights) - 2)
    x = (z - heights[k]) / (heights[k + 1] - heights[k])
    upper = x * x * (3.0 - 2.0 * x)
    bones = np.stack([[SMPL24[names[i]] for i in k], [SMPL24[names[i + 1]] for i in k]], -1)
    return bones.astype(np.int64), np.stack([1.0 - upper, upper], -1)


def _torso_parts() -> list:
    verts, faces = loft(*_TORSO_RINGS.T)
    centre_z = np.array([verts[list(f), 2].mean() for f in faces])
    parts = []
    for material, keep in (("trousers", centre_z < _WAIST_Z[0]),
                           ("belt", (centre_z >= _WAIST_Z[0]) & (centre_z < _WAIST_Z[1])),
                           ("shirt", centre_z >= _WAIST_Z[1])):
        piece_faces = [f for f, k in zip(faces, keep) if k]
        used = np.unique(np.concatenate([np.asarray(f) for f in piece_faces]))
        remap = -np.ones(len(verts), np.int64)
        remap[used] = np.arange(len(used))
        piece_verts = verts[used]
        parts.append(Part(f"torso_{material}", "pelvis", material, piece_verts,
                          [tuple(int(remap[i]) for i in f) for f in piece_faces],
                          _torso_weights(piece_verts)))
    for side in ("left", "right"):
        shoulder = J[SMPL24[f"{side}_shoulder"]]
        parts += [
            Part(f"{side}_trapezius", f"{side}_collar", "shirt",
                 *capsule(_side((0.03, 0.036, 1.395), side), shoulder + (0.0, 0.0, -0.002),
                          0.050, 0.054)),
            Part(f"{side}_deltoid", f"{side}_shoulder", "shirt",
                 *ellipsoid(shoulder + _side((0.008, 0.0, 0.004), side), (0.060, 0.058, 0.058))),
        ]
    return parts


def _hand_layout(side: str) -> dict:
    """Rest-pose hand geometry of one side: palm, finger bases/tips and the thumb."""
    wrist = J[SMPL24[f"{side}_wrist"]]
    s = 1.0 if side == "left" else -1.0
    fingers = {}
    # (y offset from the wrist toward the back of the body, length, sideways splay); palm down,
    # so the thumb side (index) is the front (-Y).
    for name, dy, length, splay in (("index", -0.026, 0.072, -0.10),
                                    ("middle", -0.009, 0.080, -0.02),
                                    ("ring", 0.008, 0.075, 0.05),
                                    ("little", 0.024, 0.060, 0.14)):
        base = wrist + (s * 0.086, dy, -0.004)
        direction = np.array((s * 1.0, splay, -0.22))
        fingers[name] = (base, base + length * direction / np.linalg.norm(direction))
    thumb_base = wrist + (s * 0.024, -0.030, -0.010)
    thumb_dir = np.array((s * 0.55, -0.72, -0.30))
    fingers["thumb"] = (thumb_base, thumb_base + 0.066 * thumb_dir / np.linalg.norm(thumb_dir))
    palm = wrist + (s * 0.046, -0.002, -0.004)
    return {"wrist": wrist, "palm": palm, "fingers": fingers}


def _limb_parts(side: str) -> list:
    j = {name: J[SMPL24[f"{side}_{name}"]] for name in
         ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")}
    sleeve_end = j["shoulder"] + 0.55 * (j["elbow"] - j["shoulder"])
    hand = _hand_layout(side)
    shoe = _shoe_points(side)
    parts = [
        Part(f"{side}_upper_arm", f"{side}_shoulder", "skin",
             *capsule(j["shoulder"], j["elbow"], 0.050, 0.040)),
        Part(f"{side}_sleeve", f"{side}_shoulder", "shirt",
             *capsule(j["shoulder"], sleeve_end, 0.060, 0.054)),
        Part(f"{side}_forearm", f"{side}_elbow", "skin",
             *capsule(j["elbow"], j["wrist"], 0.040, 0.029)),
        Part(f"{side}_palm", f"{side}_wrist", "skin",
             *ellipsoid(hand["palm"], (0.050, 0.041, 0.016))),
        Part(f"{side}_thigh", f"{side}_hip", "trousers",
             *capsule(j["hip"] + (0.0, 0.0, 0.03), j["knee"], 0.088, 0.060)),
        Part(f"{side}_shin", f"{side}_knee", "trousers",
             *capsule(j["knee"], j["ankle"] + (0.0, 0.0, 0.012), 0.060, 0.045)),
        Part(f"{side}_shoe", f"{side}_ankle", "shoes",
             *capsule(shoe["heel"], shoe["ball"], _SHOE_RADIUS_M, _SHOE_RADIUS_M * 0.98,
                      aspect=_SHOE_ASPECT)),
        Part(f"{side}_toe_cap", f"{side}_foot", "shoes",
             *capsule(shoe["ball"], shoe["toe"], _SHOE_RADIUS_M * 0.98, 0.034, aspect=1.3)),
    ]
    for name, (base, tip) in hand["fingers"].items():
        bone = f"{side}_wrist" if name == "thumb" else f"{side}_hand"
        radius = 0.0105 if name == "thumb" else 0.0088
        parts.append(Part(f"{side}_{name}", bone, "skin",
                          *capsule(base, tip, radius, radius * 0.8)))
    return parts


def build_parts(body=None) -> list:
    """Every part of the average figure (rest pose), head first, with ``body``'s hair."""
    parts = _head_parts() + _torso_parts()
    if bodies.get_body(body).long_hair:
        parts += _long_hair_parts()
    for side in ("left", "right"):
        parts += _limb_parts(side)
    return parts


def build_mesh(body=None) -> FigureMesh:
    """The parts concatenated into one mesh with per-face material and per-vertex bone.

    ``body``: a :mod:`.bodies` body type (or name); None = the average figure.
    """
    verts, faces, face_material, bones, weights = [], [], [], [], []
    offset = 0
    for part in build_parts(body):
        n = len(part.verts)
        verts.append(part.verts)
        faces += [tuple(i + offset for i in f) for f in part.faces]
        face_material += [MATERIALS.index(part.material)] * len(part.faces)
        if part.weights is None:
            bones.append(np.full((n, 2), SMPL24[part.bone], np.int64))
            weights.append(np.tile((1.0, 0.0), (n, 1)))
        else:
            bones.append(part.weights[0])
            weights.append(part.weights[1])
        offset += n
    verts, bones, weights = np.concatenate(verts), np.concatenate(bones), np.concatenate(weights)
    verts = reshape_rest_points(verts, bones, weights, body)
    return FigureMesh(verts, faces, np.array(face_material, np.int64), bones, weights)


# --- landmarks -------------------------------------------------------------------------------

def face_landmarks(body=None) -> dict:
    """Body-frame rest positions (metres) of nose tip, pupils and ears; all move with the head."""
    nose_y = _face_front_y(0.0, 1.600)
    marks = {"nose": np.array((0.0, nose_y + 0.004 - 0.020, 1.598))}
    for side in ("left", "right"):
        eye = _side((0.031, _face_front_y(0.031, 1.632) + 0.004, 1.632), side)
        marks[f"{side}_eye"] = eye + (0.0, -0.0065, 0.0)
        marks[f"{side}_ear"] = _side((0.077, 0.010, 1.612), side)
    points = reshape_rest_points(np.array(list(marks.values())),
                                 np.full(len(marks), SMPL24["head"]), body=body)
    return dict(zip(marks, points))


def foot_landmarks(side: str, body=None) -> dict:
    """Big toe, small toe and heel of one shoe: name -> (bone, (3,) rest position, metres)."""
    shoe = _shoe_points(side)
    s = 1.0 if side == "left" else -1.0
    toe = shoe["toe"]
    marks = {
        f"{side}_big_toe": (f"{side}_foot", toe + (-s * 0.016, -0.028, -0.012)),
        f"{side}_small_toe": (f"{side}_foot", toe + (s * 0.030, -0.005, -0.012)),
        f"{side}_heel": (f"{side}_ankle", shoe["heel"] + (0.0, 0.040, -0.020)),
    }
    return _reshape_marks(marks, body)


def _reshape_marks(marks: dict, body) -> dict:
    """{name: (bone name, point)} of the average figure -> the same on ``body``."""
    names = list(marks)
    bones = np.array([SMPL24[marks[n][0]] for n in names])
    points = reshape_rest_points(np.array([marks[n][1] for n in names]), bones, body=body)
    return {n: (marks[n][0], p) for n, p in zip(names, points)}


def hand_landmarks(side: str, body=None) -> list:
    """The 21 hand points (wrist, then thumb/index/middle/ring/little base -> tip).

    Returns:
        list of 21 (bone name, (3,) rest position in metres); finger points sit at 0, 1/3, 2/3
        of the finger and on its tip, the thumb's first point at its base.
    """
    hand = _hand_layout(side)
    points = [(f"{side}_wrist", hand["wrist"])]
    for name in ("thumb", "index", "middle", "ring", "little"):
        base, tip = hand["fingers"][name]
        bone = f"{side}_wrist" if name == "thumb" else f"{side}_hand"
        for fraction in (0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0):
            points.append((bone, base + fraction * (tip - base)))
    reshaped = _reshape_marks(dict(enumerate(points)), body)
    return [reshaped[k] for k in range(len(points))]


def ground_contacts(body=None) -> tuple:
    """Points on the shoe soles used to stand the figure on the floor.

    Returns:
        (bones (N,) int64 joint indices, points (N, 3) float64 rest positions, metres); in the
        rest pose the lowest of them are at z = 0.
    """
    bones, points = [], []
    for side in ("left", "right"):
        shoe = _shoe_points(side)
        ankle, foot = SMPL24[f"{side}_ankle"], SMPL24[f"{side}_foot"]
        r = _SHOE_RADIUS_M
        for bone, p in ((ankle, shoe["heel"] + (0.0, 0.0, -r)),
                        (ankle, shoe["heel"] + (0.0, r * 0.7, -r * 0.7)),
                        (ankle, shoe["ball"] + (0.0, 0.0, -r * 0.98)),
                        (foot, shoe["toe"] + (0.0, 0.0, -0.034)),
                        (foot, shoe["toe"] + (0.0, -0.034 * 0.7, -0.034 * 0.7))):
            bones.append(bone)
            points.append(p)
    bones = np.array(bones, np.int64)
    return bones, reshape_rest_points(np.array(points, np.float64), bones, body=body)
