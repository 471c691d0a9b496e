"""Blender helpers shared by the add-on and the backend's synthetic figure: the one armature
builder and the one shim over Blender's two action APIs.

``bpy`` is imported inside each function, so importing this module needs only numpy (it ships in
the extension's ``scail_protocol`` wheel and runs in Blender's Python and with the ``bpy``
module alike).

Blender 4.4 introduced slotted (layered) actions: F-curves live in a channelbag of a keyframe
strip of a layer, for one slot (the animated ID). Before 4.4 they hang off ``action.fcurves``.
Keys are written with ``keyframe_points.add(n)`` and ``foreach_set`` (never one
``keyframe_insert`` per key) and interpolate linearly: the data has a sample on every frame,
and Bezier handles would overshoot between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def has_slotted_actions() -> bool:
    """True on Blender 4.4+ (actions with slots, layers and channelbags)."""
    import bpy

    properties = bpy.types.Action.bl_rna.properties
    return "slots" in properties and "layers" in properties


@dataclass
class Channels:
    """Where an action's F-curves for one animated ID live (a channelbag, or the legacy action).

    Attributes:
        action: the ``bpy.types.Action``.
        slot: its ``ActionSlot`` for the ID (None before Blender 4.4).
        bag: object with ``fcurves`` and ``groups`` collections (channelbag or action).
    """

    action: object
    slot: object
    bag: object

    def new_group(self, name: str):
        return self.bag.groups.new(name)

    def new_fcurve(self, data_path: str, index: int, group):
        if self.slot is None:  # legacy: the group is given by name
            return self.action.fcurves.new(data_path, index=index, action_group=group.name)
        fcurve = self.bag.fcurves.new(data_path, index=index)
        fcurve.group = group
        return fcurve


def new_action(name: str, id_owner) -> Channels:
    """A new action with one slot (4.4+) for ``id_owner`` and a place for its F-curves."""
    import bpy

    action = bpy.data.actions.new(name)
    if not has_slotted_actions():
        return Channels(action, None, action)
    slot = action.slots.new(id_type=id_owner.id_type, name=id_owner.name)
    layer = action.layers.new("Layer")
    strip = layer.strips.new(type="KEYFRAME")
    return Channels(action, slot, strip.channelbag(slot, ensure=True))


def key_curves(channels: Channels, group_name: str, data_path: str, frames: np.ndarray,
               values: np.ndarray) -> list:
    """Key one vector property on many frames at once, linearly interpolated.

    Args:
        channels: from :func:`new_action`.
        group_name: F-curve group (the bone name).
        data_path: e.g. ``'pose.bones["Hip.L"].rotation_quaternion'``.
        frames: (n,) scene frame numbers, ascending.
        values: (n, k) values, one column per array index.

    Returns:
        The k new F-curves.
    """
    group = channels.bag.groups.get(group_name) or channels.new_group(group_name)
    n = len(frames)
    co = np.empty((n, 2), dtype=np.float32)
    co[:, 0] = frames
    linear = np.full(n, linear_interpolation(), dtype=np.int32)
    curves = []
    for index in range(values.shape[1]):
        fcurve = channels.new_fcurve(data_path, index, group)
        co[:, 1] = values[:, index]
        points = fcurve.keyframe_points
        points.add(n)
        points.foreach_set("co", co.ravel())
        points.foreach_set("interpolation", linear)
        fcurve.update()
        curves.append(fcurve)
    return curves


def linear_interpolation() -> int:
    """The enum value of a keyframe's 'LINEAR' interpolation (for ``foreach_set``/``get``)."""
    import bpy

    return bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def assign_action(obj, channels: Channels) -> None:
    """Make the action ``obj``'s active one (with its slot on 4.4+)."""
    anim = obj.animation_data or obj.animation_data_create()
    anim.action = channels.action
    if channels.slot is not None and getattr(anim, "action_slot", None) != channels.slot:
        anim.action_slot = channels.slot


def push_to_nla(obj, channels: Channels, track_name: str):
    """Put the action on a new NLA track of ``obj`` as one strip over the action's own frames.

    The strip starts on the action's first key, so every key plays on the scene frame it was
    set on (an action whose first keys come late, e.g. a person who walks in, is not shifted to
    the start). The object keeps no active action (as after Blender's own "Push Down"); enter
    the strip's tweak mode to edit the keys.

    Returns:
        The NLA strip.
    """
    anim = obj.animation_data or obj.animation_data_create()
    track = anim.nla_tracks.new()
    track.name = track_name
    first_key = int(round(channels.action.frame_range[0]))
    strip = track.strips.new(channels.action.name, first_key, channels.action)
    if channels.slot is not None and strip.action_slot != channels.slot:
        strip.action_slot = channels.slot
    anim.action = None
    return strip


def fcurves_of(action, slot) -> dict:
    """``(data_path, index) -> FCurve`` of an action for one slot (None: its only slot)."""
    if has_slotted_actions() and action.layers:
        if slot is None and len(action.slots) == 1:
            slot = action.slots[0]
        curves = {}
        for layer in action.layers:
            for strip in layer.strips:
                bag = strip.channelbag(slot) if slot is not None else None
                if bag is not None:
                    curves.update({(fc.data_path, fc.array_index): fc for fc in bag.fcurves})
        return curves
    return {(fc.data_path, fc.array_index): fc for fc in action.fcurves}


# --- armatures ---------------------------------------------------------------------------------

def build_armature(name: str, collection, heads: np.ndarray, tails: np.ndarray, names, parents,
                   *, connected=()):
    """An armature object with one bone per joint at the given rest heads and tails.

    Args:
        name: object and armature data name.
        collection: where to link the object (it must be in the active view layer: bones can
            only be made in edit mode).
        heads, tails: (N, 3) armature space, metres.
        names: N bone names; parents: N parent indices (-1 for the root).
        connected: indices of bones to connect to their parent's tail.

    Returns:
        The armature object (object mode, quaternion rotation on every pose bone); nothing is
        left behind if building fails.
    """
    import bpy

    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    collection.objects.link(obj)
    try:
        with edit_mode(obj):
            bones = []
            for j, bone_name in enumerate(names):
                bone = data.edit_bones.new(bone_name)
                bone.head, bone.tail, bone.roll = heads[j], tails[j], 0.0
                bones.append(bone)
            for j, parent in enumerate(parents):
                if parent >= 0:
                    bones[j].parent = bones[parent]
                    bones[j].use_connect = j in connected
        for pose_bone in obj.pose.bones:
            pose_bone.rotation_mode = "QUATERNION"
    except BaseException:
        bpy.data.objects.remove(obj)
        bpy.data.armatures.remove(data)
        raise
    return obj


class edit_mode:
    """Context manager: make ``obj`` active and enter edit mode; back to object mode on exit."""

    def __init__(self, obj):
        self.obj = obj
        self.previous = None

    def __enter__(self):
        import bpy

        view_layer = bpy.context.view_layer
        if bpy.context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        self.previous = view_layer.objects.active
        view_layer.objects.active = self.obj
        bpy.ops.object.mode_set(mode="EDIT")
        return self.obj

    def __exit__(self, *exc):
        import bpy

        bpy.ops.object.mode_set(mode="OBJECT")
        view_layer = bpy.context.view_layer
        if self.previous is not None and self.previous.name in view_layer.objects:
            view_layer.objects.active = self.previous
        return False
