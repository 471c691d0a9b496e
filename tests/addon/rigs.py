"""Character rigs the retarget tests build: SMPL-like bodies under other names, proportions,
rest poses (T or A) and bone rolls, with extra bones a real rig has (a root at the floor, a head
end, twist bones). Nothing here is the retarget code under test: the rigs are plain armatures.
"""

from __future__ import annotations

import math

import numpy as np
from scail_protocol import joints as J

# Bone names per naming style, SMPL-24 bone order (None: the rig has no such bone).
_SIDES = (("left", "Left", "L", "l"), ("right", "Right", "R", "r"))


def _names(style: str) -> dict:
    out = {}
    for side, Side, S, s in _SIDES:
        limb = {
            "mixamo": ("mixamorig:{Side}UpLeg", "mixamorig:{Side}Leg", "mixamorig:{Side}Foot",
                       "mixamorig:{Side}ToeBase", "mixamorig:{Side}Shoulder", "mixamorig:{Side}Arm",
                       "mixamorig:{Side}ForeArm", "mixamorig:{Side}Hand", "mixamorig:{Side}HandIndex1"),
            "rigify": ("thigh.{S}", "shin.{S}", "foot.{S}", "toe.{S}", "shoulder.{S}", "upper_arm.{S}",
                       "forearm.{S}", "hand.{S}", "f_index.01.{S}"),
            "unreal": ("thigh_{s}", "calf_{s}", "foot_{s}", "ball_{s}", "clavicle_{s}", "upperarm_{s}",
                       "lowerarm_{s}", "hand_{s}", "index_01_{s}"),
        }[style]
        keys = ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist", "hand")
        for key, pattern in zip(keys, limb):
            out[f"{side}_{key}"] = pattern.format(Side=Side, S=S, s=s)
    out.update({
        "mixamo": dict(pelvis="mixamorig:Hips", spine1="mixamorig:Spine", spine2="mixamorig:Spine1",
                       spine3="mixamorig:Spine2", neck="mixamorig:Neck", head="mixamorig:Head"),
        "rigify": dict(pelvis="spine", spine1="spine.001", spine2="spine.002", spine3="spine.003",
                       neck="spine.004", head="spine.006"),
        "unreal": dict(pelvis="pelvis", spine1="spine_01", spine2="spine_02", spine3="spine_03",
                       neck="neck_01", head="head"),
    }[style])
    return out


# Rest offsets of each SMPL joint from its parent for a person facing -Y (Blender axes, metres),
# T-pose; our own numbers for an adult.
_OFFSETS_M = np.array([
    (0, 0, 0), (0.09, 0, -0.08), (-0.09, 0, -0.08), (0, 0.01, 0.11), (0, 0, -0.38), (0, 0, -0.38),
    (0, 0, 0.13), (0, 0.01, -0.40), (0, 0.01, -0.40), (0, 0, 0.06), (0, -0.12, -0.06),
    (0, -0.12, -0.06), (0, 0, 0.21), (0.07, 0, 0.09), (-0.07, 0, 0.09), (0, 0, 0.09),
    (0.12, 0, -0.01), (-0.12, 0, -0.01), (0.26, 0, 0), (-0.26, 0, 0), (0.25, 0, 0), (-0.25, 0, 0),
    (0.08, 0, 0), (-0.08, 0, 0)])


def build_rig(name: str, collection, *, style: str = "mixamo", scale: float = 1.0,
              limb_scale: dict | None = None, a_pose_deg: float = 0.0, roll_seed: int | None = None,
              location=(0.0, 0.0, 0.0), extras: bool = True):
    """An armature object shaped like a person standing on Z = location.z, facing -Y.

    Args:
        style: 'mixamo', 'rigify' or 'unreal' bone names.
        scale: overall size factor (1 = an adult of about 1.7 m).
        limb_scale: {SMPL joint name: factor} lengthening the bone ending at that joint.
        a_pose_deg: arms turned down by this angle about the forward axis (A-pose rest).
        roll_seed: random bone rolls when given (else 0).
        extras: add a floor-level root bone (Unreal-style), a head end and a thigh twist bone.

    Returns:
        The armature object (object mode).
    """
    import bpy

    names = _names(style)
    heads = rest_heads(scale=scale, limb_scale=limb_scale, a_pose_deg=a_pose_deg,
                       location=location)
    rng = np.random.default_rng(roll_seed) if roll_seed is not None else None
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = {}
    root = None
    if extras:
        root = data.edit_bones.new("root")
        root.head = (heads[0, 0], heads[0, 1], location[2])
        root.tail = (heads[0, 0], heads[0, 1] + 0.2 * scale, location[2])
    for j, key in enumerate(J.SMPL24_NAMES):
        bone = data.edit_bones.new(names[key])
        child = _axis_child(j)
        bone.head = heads[j]
        bone.tail = heads[child] if child >= 0 else heads[j] + _leaf_direction(j, heads) * 0.08 * scale
        bone.roll = float(rng.uniform(-math.pi, math.pi)) if rng is not None else 0.0
        p = J.SMPL24_PARENTS[j]
        if p >= 0:
            bone.parent = bones[p]
            bone.use_connect = _axis_child(p) == j
        elif root is not None:
            bone.parent = root
        bones[j] = bone
    if extras:
        end = data.edit_bones.new(f"{names['head']}_end")
        end.head, end.parent = bones[15].tail, bones[15]
        end.tail = np.array(bones[15].tail) + np.array([0.0, 0.0, 0.05])
        twist = data.edit_bones.new(f"{names['left_hip']}_twist")
        twist.head = bones[1].head
        twist.tail = (bones[1].head + bones[1].tail) / 2
        twist.parent = bones[1]
    bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def rest_heads(*, scale: float = 1.0, limb_scale: dict | None = None, a_pose_deg: float = 0.0,
               location=(0.0, 0.0, 0.0)) -> np.ndarray:
    """(24, 3) SMPL joint positions of the test body (the walking take's proportions), metres,
    facing -Y, the balls of the feet 4 cm (times ``scale``) above ``location``; see
    :func:`build_rig` for the arguments."""
    offsets = _OFFSETS_M * scale
    for joint, factor in (limb_scale or {}).items():
        offsets[J.SMPL24[joint]] *= factor
    heads = np.zeros((24, 3))
    for j, p in enumerate(J.SMPL24_PARENTS):
        if p >= 0:
            heads[j] = heads[p] + offsets[j]
    if a_pose_deg:
        for side, sign in (("left", 1.0), ("right", -1.0)):
            shoulder = J.SMPL24[f"{side}_shoulder"]
            turn = _rot_y(sign * math.radians(a_pose_deg))
            for j in _descendants(shoulder):
                heads[j] = heads[shoulder] + turn @ (heads[j] - heads[shoulder])
    lowest = min(heads[J.SMPL24["left_foot"], 2], heads[J.SMPL24["right_foot"], 2]) - 0.04 * scale
    return heads + np.asarray(location, float) - np.array([0.0, 0.0, lowest])


def _axis_child(j: int) -> int:
    kids = [c for c, p in enumerate(J.SMPL24_PARENTS) if p == j]
    if not kids:
        return -1
    return {0: 3, 9: 12}.get(j, kids[0])


def _descendants(j: int) -> list:
    out = [j]
    for c, p in enumerate(J.SMPL24_PARENTS):
        if p in out and c not in out:
            out.append(c)
    return out


def _leaf_direction(j: int, heads) -> np.ndarray:
    d = heads[j] - heads[J.SMPL24_PARENTS[j]]
    return d / np.linalg.norm(d)


def _rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def smpl_bone_names(style: str) -> dict:
    """{SMPL bone key: this style's bone name} (what a correct bone map holds)."""
    return _names(style)


# Rigify's human meta-rig: {bone: (SMPL joint at its head, SMPL joint at its tail)}; the neck is
# split in two at its middle (None: the midpoint of spine.004), the head and toes get an end.
_RIGIFY_META_CHAIN = {
    "spine": (0, 3), "spine.001": (3, 6), "spine.002": (6, 9), "spine.003": (9, 12),
    "spine.004": (12, None), "spine.005": (None, 15), "spine.006": (15, "up"),
    **{f"{bone}.{S}": pair for S, o in (("L", 0), ("R", 1)) for bone, pair in (
        ("thigh", (1 + o, 4 + o)), ("shin", (4 + o, 7 + o)), ("foot", (7 + o, 10 + o)),
        ("toe", (10 + o, "ahead")), ("shoulder", (13 + o, 16 + o)),
        ("upper_arm", (16 + o, 18 + o)), ("forearm", (18 + o, 20 + o)),
        ("hand", (20 + o, 22 + o)))},
}


def shape_rigify_metarig(meta, heads: np.ndarray, *, bend_m: float = 0.01) -> None:
    """Move the body bones of Rigify's human meta-rig onto SMPL joint positions.

    Args:
        meta: the meta-rig object (``bpy.ops.object.armature_human_metarig_add``).
        heads: (24, 3) SMPL joint positions in the meta-rig's armature space, metres, a person
            facing -Y (an imported take's rest, scaled as wanted).
        bend_m: elbows move back and knees forward by this much, because Rigify's limbs need
            a bend to know which way they fold.

    The face, fingers, heels and breasts stay where the meta-rig had them.
    """
    import bpy

    heads = np.array(heads, float)
    for side in (0, 1):
        heads[18 + side, 1] += bend_m
        heads[4 + side, 1] -= bend_m
    mid_neck = (heads[12] + heads[15]) / 2
    up = heads[15] - heads[12]
    ends = {"up": lambda j: heads[j] + 1.6 * up,
            "ahead": lambda j: heads[j] + np.array([0.0, -0.05, 0.0])}
    bpy.context.view_layer.objects.active = meta
    bpy.ops.object.mode_set(mode="EDIT")
    bones = meta.data.edit_bones
    for name, (a, b) in _RIGIFY_META_CHAIN.items():
        bone = bones[name]
        bone.head = mid_neck if a is None else heads[a]
        bone.tail = mid_neck if b is None else ends[b](a) if isinstance(b, str) else heads[b]
    bpy.ops.object.mode_set(mode="OBJECT")


def add_constrained_helpers(obj, style: str = "mixamo") -> dict:
    """Hang the upper arms and the neck under constrained helper bones, as a generated Rigify
    rig hangs its FK controls under MCH bones, so their parents are not plain parent chains.

    * ``MCH-<upper arm>`` (between the clavicle and the upper arm) copies the pelvis bone's
      rotation at influence 0.5, in world space;
    * ``MCH-<neck>`` (between spine3 and the neck) copies the root bone's rotation: the neck
      keeps its world orientation whatever the chest does (Rigify's neck and head follow the
      torso like this).

    Returns:
        {helper bone: the bone now hanging under it}.
    """
    import bpy

    names = _names(style)
    hung = {f"MCH-{names[k]}": names[k] for k in ("left_shoulder", "right_shoulder", "neck")}
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    bones = obj.data.edit_bones
    for helper, child in hung.items():
        bone = bones.new(helper)
        bone.head, bone.tail, bone.roll = bones[child].head, bones[child].tail, bones[child].roll
        bone.parent = bones[child].parent
        bones[child].use_connect = False
        bones[child].parent = bone
    bpy.ops.object.mode_set(mode="OBJECT")
    for helper, child in hung.items():
        constraint = obj.pose.bones[helper].constraints.new("COPY_ROTATION")
        constraint.target = obj
        constraint.subtarget = "root" if child == names["neck"] else names["pelvis"]
        constraint.influence = 1.0 if child == names["neck"] else 0.5
    return hung
