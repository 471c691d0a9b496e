"""Actions and F-curves across Blender's two animation APIs, keyed and read in bulk.

Blender 4.4 introduced slotted (layered) actions. The one shim over both APIs (writing actions,
finding their F-curves) is ``scail_protocol.blender_rig``, shared with the backend's synthetic
figure; this module re-exports its writing half and adds reading: which F-curves animate an ID
through its action or NLA strip, and their values at given frames. Everything else in the
add-on goes through here, so the rest never asks which API it has.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scail_protocol.blender_rig import (Channels, fcurves_of, has_slotted_actions, key_curves,
                                        linear_interpolation, new_action, push_to_nla)

__all__ = ["Channels", "has_slotted_actions", "new_action", "key_curves", "push_to_nla",
           "CurveSource", "curve_source", "evaluate", "key_frames"]

log = logging.getLogger(__name__)


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
        return np.clip(self._unclamped(scene_frames), self.frame_min, self.frame_max)

    def covers(self, scene_frames: np.ndarray) -> np.ndarray:
        """(T,) bool: the scene frames that fall inside the strip (outside, Blender only holds
        the strip's first or last pose: nothing there was keyed)."""
        frames = self._unclamped(scene_frames)
        return (frames >= self.frame_min) & (frames <= self.frame_max)

    def _unclamped(self, scene_frames) -> np.ndarray:
        return self.offset + np.asarray(scene_frames, dtype=np.float64) * self.scale


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
        source = CurveSource(fcurves_of(anim.action, slot))
        in_tweak = getattr(anim, "use_tweak_mode", False)
        if in_tweak and strip is not None and strip.action == anim.action:
            _apply_strip_timing(source, strip)
        return source
    if strip is None:
        return CurveSource({})
    source = CurveSource(fcurves_of(strip.action, getattr(strip, "action_slot", None)))
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
        if n == 1 or np.all(kinds[:-1] == linear_interpolation()):  # the last key's interpolation is unused
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
