"""SCAIL Pose Studio: import video motion as armatures, edit it, render the SCAIL conditioning
video. A Blender 4.2+ extension (see blender_manifest.toml); this file only registers classes.

The work lives in plain modules: ``armature`` / ``export`` (PoseSequence <-> armatures),
``camera``, ``render`` (Blender-side conditioning render), ``client`` + ``jobs`` (the backend,
polled from one timer), ``headless`` (synchronous entry points for ``blender -b``).
"""

from __future__ import annotations

import bpy

from . import client, operators, panels, prefs, props

classes = props.classes + prefs.classes + operators.classes + panels.classes


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    props.register_properties()


def unregister():
    client.shutdown()
    props.unregister_properties()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
