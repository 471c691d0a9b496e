"""SCAIL Pose Studio: import video motion as armatures, edit it, render the SCAIL conditioning
video. A Blender 4.2+ extension (see blender_manifest.toml); this file only registers classes.

The work lives in plain modules: ``armature`` / ``export`` (PoseSequence <-> armatures),
``camera``, ``render`` (Blender-side conditioning render), ``client`` + ``jobs`` (the backend,
polled from one timer), ``headless`` (synchronous entry points for ``blender -b``),
``grounding`` / ``bonemaps`` / ``retarget`` / ``export_formats`` (onto a character rig, BVH/FBX)
with their UI in ``retarget_ui``; ``menus`` (File › Import/Export entries, .npz drag and drop)
and ``reports`` (every failure as one reported line).
"""

from __future__ import annotations

import bpy

from . import client, menus, operators, panels, prefs, props, reports, retarget_ui

classes = (props.classes + prefs.classes + reports.classes + operators.classes + panels.classes
           + retarget_ui.classes + menus.classes)


def register():
    for cls in classes:
        if issubclass(cls, bpy.types.Operator):
            reports.guard(cls)  # any failure: one line in the status bar, not a traceback
        bpy.utils.register_class(cls)
    props.register_properties()
    retarget_ui.register_properties()
    menus.register()  # File > Import / Export entries


def unregister():
    menus.unregister()
    client.shutdown()
    retarget_ui.unregister_properties()
    props.unregister_properties()
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
