"""The add-on's entries in Blender's own menus and drop targets.

* File › Import › SCAIL poses (.npz) and File › Export › SCAIL poses (.npz), from the entry
  tables below: to add an entry (a retarget or BVH/FBX export, say) add one
  ``(operator bl_idname, menu text)`` line to :data:`IMPORT_ENTRIES` or :data:`EXPORT_ENTRIES`.
  An entry whose operator is not registered is not drawn, so registration order does not matter.
* Dropping a ``.npz`` file onto the 3D viewport imports it (a ``FileHandler``, Blender 4.2+): the
  import operator runs with the dropped path and opens no file browser.
"""

from __future__ import annotations

import bpy

IMPORT_ENTRIES = (
    ("scail.import_motion", "SCAIL poses (.npz)"),
)
EXPORT_ENTRIES = (
    ("scail.export_motion", "SCAIL poses (.npz)"),
    ("scail.export_bvh", "SCAIL motion (.bvh)"),
    ("scail.export_fbx", "SCAIL motion (.fbx)"),
)


def _draw_entries(layout, entries) -> None:
    for idname, text in entries:
        if is_registered(idname):
            layout.operator(idname, text=text)


def menu_import(self, context):
    """Drawn at the end of File › Import."""
    _draw_entries(self.layout, IMPORT_ENTRIES)


def menu_export(self, context):
    """Drawn at the end of File › Export."""
    _draw_entries(self.layout, EXPORT_ENTRIES)


def is_registered(idname: str) -> bool:
    """True when the operator ``module.name`` is registered with Blender."""
    module, name = idname.split(".", 1)
    return hasattr(bpy.types, f"{module.upper()}_OT_{name}")


class SCAIL_FH_poses(bpy.types.FileHandler):
    """Drag and drop of SCAIL pose files (.npz) onto the 3D viewport."""

    bl_idname = "SCAIL_FH_poses"
    bl_label = "SCAIL poses"
    bl_import_operator = "scail.import_motion"
    bl_file_extensions = ".npz"

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"


classes = (SCAIL_FH_poses,)
_MENUS = (("TOPBAR_MT_file_import", menu_import), ("TOPBAR_MT_file_export", menu_export))


def register() -> None:
    """Append the File-menu entries (the FileHandler is registered with ``classes``)."""
    for menu, draw in _MENUS:
        getattr(bpy.types, menu).append(draw)


def unregister() -> None:
    for menu, draw in _MENUS:
        getattr(bpy.types, menu).remove(draw)
