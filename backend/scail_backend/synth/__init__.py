"""A synthetic human of our own: demo input and exact ground truth for accuracy.

A procedurally built, rigged figure (SMPL-24 armature, skinned capsule/ellipsoid body with face,
hair, hands and clothes) performs a library of procedural motions in front of one of several
camera set-ups; Blender (``bpy``, headless, Workbench) renders it to ``driving.mp4`` and the
evaluated armature gives ``truth.npz``. ``bpy`` is imported only when a clip is made.
"""

from .cameras import CAMERAS
from .clip import SynthClip, make_clip, make_demo
from .motions import MOTIONS

__all__ = ["MOTIONS", "CAMERAS", "SynthClip", "make_clip", "make_demo"]
