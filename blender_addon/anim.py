"""Actions and F-curves across Blender's two animation APIs, keyed and read in bulk.

Blender 4.4 introduced slotted (layered) actions: F-curves live in a channelbag of a keyframe
strip of a layer, for one slot (the animated ID). Before 4.4 they hang off ``action.fcurves``.
Everything else in the add-on goes through this module, so the rest never asks which API it has.

Keys are written with ``keyframe_points.add(n)`` and ``foreach_set`` (never one
``keyframe_insert`` per key) and interpolate linearly: the data has a sample on every frame, and
Bezier handles would overshoot between them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import bpy
import numpy as np

log = logging.getLogger(__name__)

_LINEAR = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value


def has_slotted_actions() -> bool:
    """True on Blender 4.4+ (actions with slots, layers and channelbags)."""
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
    action = bpy.data.actions.new(name)
    if not has_slotted_actions():
        return Channels(action, None, action)
    slot = action.slots.new(id_type=id_owner.id_type, name=id_owner.name)
    layer = action.layers.new("Layer")
    strip = layer.strips.new(type="KEYFRAME")
    return Channels(action, slot, strip.channelbag(slot, ensure=True))


def key_curves(channels: Channels, group_name: str, data_path: str, frames: np.ndarray,
               values: np.ndarray) -> list:
    """Key one vector property on many frames at once.

    Args:
        channels: from :func:`new_action`.
        group_name: F-curve group (the bone name).
        data_path: e.g. ``'pose.bones["Hip.L"].rotation_quaternion'``.
        frames: (n,) scene frame numbers, ascending.
        values: (n, k) values, one column per array index.

    Returns:
        The k new F-curves.
    """
    group = _group(channels, group_name)
    n = len(frames)
    co = np.empty((n, 2), dtype=np.float32)
    co[:, 0] = frames
    curves = []
    for index in range(values.shape[1]):
        fcurve = channels.new_fcurve(data_path, index, group)
        co[:, 1] = values[:, index]
        points = fcurve.keyframe_points
        points.add(n)
        points.foreach_set("co", co.ravel())
        points.foreach_set("interpolation", np.full(n, _LINEAR, dtype=np.int32))
        fcurve.update()
        curves.append(fcurve)
    return curves


def _group(channels: Channels, name: str):
    group = channels.bag.groups.get(name)
    return group if group is not None else channels.new_group(name)


def push_to_nla(obj, channels: Channels, track_name: str, start_frame: int):
    """Put the action on a new NLA track of ``obj`` as one strip starting at ``start_frame``.

    The object keeps no active action (as after Blender's own "Push Down"); enter the strip's
    tweak mode to edit the keys.

    Returns:
        The NLA strip.
    """
    anim = obj.animation_data or obj.animation_data_create()
    track = anim.nla_tracks.new()
    track.name = track_name
    strip = track.strips.new(channels.action.name, int(start_frame), channels.action)
    if channels.slot is not None and strip.action_slot != channels.slot:
        strip.action_slot = channels.slot
    anim.action = None
    return strip


@dataclass
class CurveSource:
    """The F-curves animating an ID and how scene frames map to the action's frames.

    ``action_frame = offset + scene_frame * scale`` (NLA strip timing; identity for an active
    action outside tweak mode), clamped to ``[frame_min, frame_max]`` when those are set.
    """

    fcurves: dict  # (data_path, index) -> FCurve
    offset: float = 0.0
    scale: float = 1.0
    frame_min: float = -np.inf
    frame_max: float = np.inf

    def action_frames(self, scene_frames: np.ndarray) -> np.ndarray:
        frames = self.offset + np.asarray(scene_frames, dtype=np.float64) * self.scale
        return np.clip(frames, self.frame_min, self.frame_max)


def curve_source(id_owner) -> CurveSource:
    """The F-curves that animate ``id_owner``: its active action, else its top unmuted NLA strip.

    Note:
        Only one action is evaluated. Several NLA strips blended together, strip repeats and
        influence curves are not combined; bake them into one action first.
    """
    anim = id_owner.animation_data
    if anim is None:
        return CurveSource({})
    strip = _top_strip(anim)
    if anim.action is not None:
        slot = getattr(anim, "action_slot", None)
        source = CurveSource(_fcurves_of(anim.action, slot))
        in_tweak = getattr(anim, "use_tweak_mode", False)
        if in_tweak and strip is not None and strip.action == anim.action:
            _apply_strip_timing(source, strip)
        return source
    if strip is None:
        return CurveSource({})
    source = CurveSource(_fcurves_of(strip.action, getattr(strip, "action_slot", None)))
    _apply_strip_timing(source, strip)
    return source


def _top_strip(anim):
    for track in reversed(anim.nla_tracks):
        if track.mute:
            continue
        for strip in track.strips:
            if not strip.mute and strip.action is not None:
                return strip
    return None


def _apply_strip_timing(source: CurveSource, strip) -> None:
    scale = strip.scale if strip.scale else 1.0
    source.scale = 1.0 / scale
    source.offset = strip.action_frame_start - strip.frame_start / scale
    source.frame_min = strip.action_frame_start
    source.frame_max = strip.action_frame_end


def _fcurves_of(action, slot) -> dict:
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


def evaluate(fcurve, action_frames: np.ndarray) -> np.ndarray:
    """Values of one F-curve at the given action frames (its interpolation and modifiers applied).

    Curves of linear keys with constant extrapolation and no modifiers (what import writes) are
    interpolated with numpy, which is exactly what Blender computes for them; any other curve
    (Bezier keys from editing, modifiers, cyclic extrapolation) is evaluated by Blender frame by
    frame.
    """
    points = fcurve.keyframe_points
    n = len(points)
    if n and not len(fcurve.modifiers) and fcurve.extrapolation == "CONSTANT":
        kinds = np.empty(n, dtype=np.int32)
        points.foreach_get("interpolation", kinds)
        if n == 1 or np.all(kinds[:-1] == _LINEAR):  # the last key's interpolation is unused
            co = np.empty(2 * n, dtype=np.float32)
            points.foreach_get("co", co)
            frames, values = co[0::2].astype(np.float64), co[1::2].astype(np.float64)
            if np.all(np.diff(frames) > 0):
                return np.interp(action_frames, frames, values)
    return np.fromiter((fcurve.evaluate(f) for f in action_frames.tolist()), dtype=np.float64,
                       count=len(action_frames))


def key_frames(source: CurveSource) -> np.ndarray:
    """Sorted unique action frames that carry a key on any of the source's F-curves."""
    chunks = []
    for fcurve in source.fcurves.values():
        n = len(fcurve.keyframe_points)
        co = np.empty(2 * n, dtype=np.float32)
        fcurve.keyframe_points.foreach_get("co", co)
        chunks.append(co[0::2])
    return np.unique(np.concatenate(chunks)) if chunks else np.zeros(0, dtype=np.float32)
