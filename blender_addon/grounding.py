"""Ground an imported take: floor on Z = 0, subject facing -Y, camera moved along (same picture).

The maths (contacts, plane fit, the rigid transform) is ``scail_protocol.grounding``; this
module applies its transform to the objects of an import and adds a floor plane. Armatures and
the camera move by one rigid transform, so everything the camera sees, and every export (which
re-expresses the joints relative to the camera, see ``camera.world_to_reference``), is unchanged.

What a grounded armature keeps: ``scail_grounded`` (True) and ``scail_floor`` (the floor object).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import bpy
import numpy as np
from mathutils import Matrix
from scail_protocol import camera as C
from scail_protocol import grounding as G

from . import armature

log = logging.getLogger(__name__)

FLOOR_MARGIN_M = 1.0  # the floor plane reaches this far beyond where the people go
FLOOR_CELL_M = 0.5  # grid spacing of the floor plane (a reference for the eye, never rendered)
GROUNDED_PROP = "scail_grounded"
FLOOR_PROP = "scail_floor"


@dataclass
class GroundResult:
    """What :func:`ground_import` did.

    Attributes:
        matrix: (4, 4) the rigid transform applied to the armatures and the camera.
        floor: the fitted ``scail_protocol.grounding.Floor`` (take frame, before the move).
        floor_object: the floor plane mesh object.
    """

    matrix: np.ndarray
    floor: G.Floor
    floor_object: object


def ground_import(result, seq, *, collection, name: str = "SCAIL") -> GroundResult:
    """Stand the armatures of an import on a floor plane at Z = 0, facing -Y.

    Args:
        result: the ``armature.ImportResult`` of ``seq`` (its armatures and camera are moved).
        seq: the imported PoseSequence (its joints give the floor and the facing).
        collection: where to link the floor plane.
        name: prefix of the floor object's name.

    Returns:
        A :class:`GroundResult`.

    Raises:
        SequenceError: the feet, hips or pelvis are missing on every frame.
    """
    people = [int(obj["scail_person"]) for obj in result.armatures]
    joints_m = _stacked_joints(seq, people)
    floor = G.fit_floor(joints_m, seq.fps)
    matrix = G.grounding_matrix(joints_m, floor)
    move = Matrix(matrix.tolist())
    for obj in [*result.armatures, result.camera]:
        if obj is not None:
            obj.matrix_world = move @ obj.matrix_world
    grounded = G.apply_matrix(matrix, joints_m[:, G.ROOT])
    floor_obj = make_floor(f"{name} Floor", collection, grounded[np.isfinite(grounded).all(-1)])
    for obj in result.armatures:
        obj[GROUNDED_PROP] = True
        obj[FLOOR_PROP] = floor_obj
    if not floor.fitted:
        log.info("the feet do not span enough floor to fit its tilt; kept the camera's up")
    return GroundResult(matrix=matrix, floor=floor, floor_object=floor_obj)


def _stacked_joints(seq, people) -> np.ndarray:
    """(sum T + gaps, 24, 3) Blender-metre joints of the people, one NaN frame between people.

    The NaN frame keeps foot speeds from being computed across two people.
    """
    gap = np.full((1, 24, 3), np.nan)
    chunks = []
    for person in people:
        chunks += [C.camera_to_blender(seq.joints3d[person]).astype(np.float64), gap]
    return np.concatenate(chunks[:-1])


def make_floor(name: str, collection, positions_m: np.ndarray):
    """A wireframe grid on Z = 0 covering ``positions_m`` ((n, 3) world) plus a margin.

    The plane is for the eye only: hidden from renders so the conditioning video is unchanged.
    """
    if len(positions_m):
        lo = positions_m[:, :2].min(axis=0) - FLOOR_MARGIN_M
        hi = positions_m[:, :2].max(axis=0) + FLOOR_MARGIN_M
    else:
        lo, hi = np.full(2, -FLOOR_MARGIN_M), np.full(2, FLOOR_MARGIN_M)
    nx, ny = (np.maximum(np.ceil((hi - lo) / FLOOR_CELL_M), 1)).astype(int)
    xs = np.linspace(lo[0], hi[0], nx + 1)
    ys = np.linspace(lo[1], hi[1], ny + 1)
    verts = [(float(x), float(y), 0.0) for y in ys for x in xs]
    faces = [(j * (nx + 1) + i, j * (nx + 1) + i + 1, (j + 1) * (nx + 1) + i + 1,
              (j + 1) * (nx + 1) + i) for j in range(ny) for i in range(nx)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], faces)
    mesh.update()
    obj = bpy.data.objects.new(name, mesh)
    obj.display_type = "WIRE"
    obj.hide_render = True
    obj.hide_select = True
    collection.objects.link(obj)
    return obj


def remove_floor(obj) -> None:
    """Delete a floor object and its mesh (undo a failed grounding)."""
    mesh = obj.data
    bpy.data.objects.remove(obj)
    if mesh is not None and mesh.users == 0:
        bpy.data.meshes.remove(mesh)


def is_grounded(obj) -> bool:
    """True for an armature this module stood on a floor."""
    return bool(obj.get(GROUNDED_PROP, False))


def ground_or_remove(result, seq, *, collection, name: str = "SCAIL") -> GroundResult:
    """:func:`ground_import`, deleting the whole import when grounding fails (then re-raising)."""
    try:
        return ground_import(result, seq, collection=collection, name=name)
    except BaseException:
        armature.remove_imported(result)
        raise
