"""UI of retargeting, grounding and BVH/FBX export: settings, operators and the sidebar panel.

Operators declare properties and call one function each (``retarget``, ``grounding``,
``bonemaps``, ``export_formats``); the bone map being edited lives on the scene
(``scene.scail_retarget.bones``: one row per SMPL bone, the target bone picked from the rig).
"""

from __future__ import annotations

import bpy
import numpy as np
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, IntProperty,
                       PointerProperty, StringProperty)
from bpy_extras.io_utils import ExportHelper, ImportHelper
from scail_protocol.errors import ScailError
from scail_protocol.sequence import PoseSequence

from . import armature, bonemaps, export, export_formats, grounding, retarget
from .reports import fail

GENERIC = "generic"


def _preset_items(self, context):
    items = [("auto", "Auto-detect", "the preset that fits the rig best, else the generic matcher"),
             (GENERIC, "Generic (by names)", "guess from bone-name patterns and the hierarchy")]
    for preset_id in bonemaps.preset_ids():
        preset = bonemaps.load_preset(preset_id)
        items.append((preset_id, preset["name"], preset.get("description", "")))
    _preset_items.cache = items  # Blender needs the strings kept alive
    return items


def _is_take(self, obj):
    return obj.type == "ARMATURE" and armature.PERSON_PROP in obj


def _is_rig(self, obj):
    return obj.type == "ARMATURE" and armature.PERSON_PROP not in obj


class SCAIL_PG_bone_pair(bpy.types.PropertyGroup):
    """One row of the bone map: an SMPL bone and the target bone that follows it."""

    key: StringProperty(name="SMPL Bone")
    bone: StringProperty(name="Target Bone", description="Bone of the target rig (empty: none)")


class SCAIL_PG_retarget(bpy.types.PropertyGroup):
    """Retarget settings of a scene and the bone map being edited."""

    source: PointerProperty(name="Source", type=bpy.types.Object, poll=_is_take,
                            description="The imported SCAIL take (SMPL-24 armature)")
    target: PointerProperty(name="Target", type=bpy.types.Object, poll=_is_rig,
                            description="The character's armature")
    preset: EnumProperty(name="Bone Map", items=_preset_items,
                         description="Preset filling the bone map below")
    bones: CollectionProperty(type=SCAIL_PG_bone_pair)
    use_in_place: BoolProperty(name="In Place", default=False,
                               description="Drop the horizontal root motion")
    use_foot_contacts: BoolProperty(name="Plant Feet", default=True,
                                    description="Feet that touch the floor in the take stay planted")


def current_map(settings) -> dict:
    """The edited bone map as {SMPL bone: target bone} (empty rows left out)."""
    return {row.key: row.bone for row in settings.bones if row.bone}


def set_map(settings, bone_map: dict) -> None:
    """Fill the edited bone map, one row per SMPL bone."""
    settings.bones.clear()
    for key in bonemaps.MAP_KEYS:
        row = settings.bones.add()
        row.key = key
        row.bone = bone_map.get(key, "")


class SCAIL_OT_bonemap_fill(bpy.types.Operator):
    """Fill the bone map from the chosen preset (or guess it) for the target rig"""

    bl_idname = "scail.bonemap_fill"
    bl_label = "Fill Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return context.scene.scail_retarget.target is not None

    def execute(self, context):
        settings = context.scene.scail_retarget
        try:
            bone_map = retarget.resolve_map(settings.preset, settings.target)
        except ScailError as e:
            return fail(self, e)
        set_map(settings, bone_map)
        kind, message = fill_report(bone_map, settings.target.name)
        self.report({kind}, message)
        return {"FINISHED"}


def fill_report(bone_map: dict, target: str) -> tuple:
    """(kind, line) saying how much of the bone map was filled: a warning when the bones
    retargeting needs (hips, thighs, shins) are not all found."""
    mapped = sum(bool(bone_map.get(key)) for key in bonemaps.BONE_KEYS)
    of = f"of {len(bonemaps.BONE_KEYS)} SMPL bones"
    missing = bonemaps.missing_required(bone_map)
    if not mapped:
        return "WARNING", (f"mapped 0 {of}: no preset or bone-name pattern fits {target}; "
                           f"pick its bones in the bone map or choose another preset")
    if missing:
        return "WARNING", (f"mapped {mapped} {of} but not {', '.join(missing)} (retargeting "
                           f"needs the hips, thighs and shins); pick them in the bone map")
    return "INFO", f"mapped {mapped} {of}"


class SCAIL_OT_bonemap_save(bpy.types.Operator, ExportHelper):
    """Save the bone map as JSON"""

    bl_idname = "scail.bonemap_save"
    bl_label = "Save Bone Map"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            path = bonemaps.save_map(bpy.path.abspath(self.filepath),
                                     current_map(context.scene.scail_retarget))
        except (ScailError, OSError) as e:
            return fail(self, e)
        self.report({"INFO"}, f"wrote {path}")
        return {"FINISHED"}


class SCAIL_OT_bonemap_load(bpy.types.Operator, ImportHelper):
    """Load a bone map saved as JSON (or a preset file)"""

    bl_idname = "scail.bonemap_load"
    bl_label = "Load Bone Map"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        settings = context.scene.scail_retarget
        try:
            loaded = bonemaps.load_map(bpy.path.abspath(self.filepath))
        except ScailError as e:
            return fail(self, e)
        if settings.target is not None:
            loaded = bonemaps.resolve(loaded, [b.name for b in settings.target.data.bones])
        else:
            loaded = {k: v if isinstance(v, str) else v[0] for k, v in loaded.items() if v}
        set_map(settings, loaded)
        return {"FINISHED"}


class SCAIL_OT_retarget(bpy.types.Operator):
    """Bake the source take onto the target rig (a new action on an NLA track; the take is untouched)"""

    bl_idname = "scail.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    use_in_place: BoolProperty(name="In Place", default=False)
    use_foot_contacts: BoolProperty(name="Plant Feet", default=True)

    @classmethod
    def poll(cls, context):
        settings = context.scene.scail_retarget
        if settings.source is None or settings.target is None:
            cls.poll_message_set("pick the source take and the target rig")
            return False
        return True

    def execute(self, context):
        settings = context.scene.scail_retarget
        bone_map = current_map(settings) or settings.preset
        cursor = CursorProgress(context.window_manager)
        try:
            result = retarget.retarget(settings.source, settings.target, bone_map,
                                       scene=context.scene, in_place=self.use_in_place,
                                       use_foot_contacts=self.use_foot_contacts, report=self.report,
                                       progress=cursor)
        except ScailError as e:
            return fail(self, e)
        finally:
            cursor.end()
        if not settings.bones:
            set_map(settings, result.bone_map)
        self.report({"INFO"}, f"baked {len(result.frames)} frames onto {settings.target.name} "
                              f"(root motion x{result.leg_ratio:.2f})")
        return {"FINISHED"}


class CursorProgress:
    """Blender's own progress habit for a long blocking operator: the number in the mouse
    cursor (``WindowManager.progress_begin`` / ``progress_update`` / ``progress_end``), fed by a
    ``progress(stage, done, total)`` callback. Does nothing in background mode (no cursor).

    Retarget runs inside one operator call: Blender cannot redraw or take a Cancel until it
    returns, so the cursor is all the feedback there is (see the README).
    """

    def __init__(self, window_manager):
        self.wm = window_manager if window_manager is not None and not bpy.app.background else None
        self.total = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.wm is None:
            return
        if self.total != total:  # the first report (or a new total): restart the range
            if self.total is not None:
                self.wm.progress_end()
            self.wm.progress_begin(0, max(int(total), 1))
            self.total = total
        self.wm.progress_update(int(done))

    def end(self) -> None:
        if self.wm is not None and self.total is not None:
            self.wm.progress_end()
        self.total = None


class SCAIL_OT_ground_take(bpy.types.Operator):
    """Stand the selected SCAIL take on a floor at Z = 0 facing -Y (camera moved along)"""

    bl_idname = "scail.ground_take"
    bl_label = "Ground Take"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        if obj is None or armature.PERSON_PROP not in obj or grounding.is_grounded(obj):
            cls.poll_message_set("select an imported SCAIL take that is not grounded yet")
            return False
        return True

    def execute(self, context):
        obj = context.active_object
        takes = [o for o in armature.scail_armatures(context.scene)
                 if o.get("scail_camera") == obj.get("scail_camera") and not grounding.is_grounded(o)]
        try:
            seq = _sequence_of(takes)
            result = armature.ImportResult(armatures=takes, camera=obj.get("scail_camera"))
            grounding.ground_import(result, seq, collection=context.collection, name=obj.name)
        except ScailError as e:
            return fail(self, e)
        return {"FINISHED"}


def _sequence_of(takes) -> PoseSequence:
    """The sequence the takes were imported from (the source arrays each armature keeps)."""
    arrays = [export._source_of(o) for o in takes]
    first = arrays[0]
    return PoseSequence(
        fps=first["fps"], size=first["size"], K=first["K"],
        joints3d=np.stack([a["joints3d"] for a in arrays]),
        kp2d=np.stack([a["kp2d"] for a in arrays]),
        kp2d_score=np.stack([a["kp2d_score"] for a in arrays]),
        bbox=np.stack([a["bbox"] for a in arrays]),
        track_id=np.array([a["track_id"] for a in arrays]), meta=first["meta"])


class _ExportMotion(ExportHelper):
    """Shared part of the BVH / FBX export operators."""

    use_scene_range: BoolProperty(name="Scene Frame Range", default=True,
                                  description="Export the scene's frame range (else the frames "
                                              "below)")
    frame_start: IntProperty(name="Start", default=1)
    frame_end: IntProperty(name="End", default=250)

    @classmethod
    def poll(cls, context):
        if not any(o.type == "ARMATURE" for o in context.selected_objects):
            cls.poll_message_set("select an armature (a SCAIL take or a retargeted rig)")
            return False
        return True

    def execute(self, context):
        armatures = [o for o in context.selected_objects if o.type == "ARMATURE"]
        active = context.active_object
        if active in armatures:  # BVH exports one: the active one
            armatures.remove(active)
            armatures.insert(0, active)
        if self.filename_ext == ".bvh":
            armatures = armatures[:1]
        start, end = (None, None) if self.use_scene_range else (self.frame_start, self.frame_end)
        try:
            path = export_formats.export_armatures(self.filepath, armatures,
                                                   scene=context.scene, frame_start=start,
                                                   frame_end=end)
        except ScailError as e:
            return fail(self, e)
        self.report({"INFO"}, f"wrote {path}")
        return {"FINISHED"}


class SCAIL_OT_export_bvh(_ExportMotion, bpy.types.Operator):
    """Export the active armature's motion as BVH (Blender's own BVH exporter)"""

    bl_idname = "scail.export_bvh"
    bl_label = "Export Motion (.bvh)"
    filename_ext = ".bvh"
    filter_glob: StringProperty(default="*.bvh", options={"HIDDEN"})


class SCAIL_OT_export_fbx(_ExportMotion, bpy.types.Operator):
    """Export the selected armatures' motion as FBX (Blender's own FBX exporter)"""

    bl_idname = "scail.export_fbx"
    bl_label = "Export Motion (.fbx)"
    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})


class SCAIL_PT_retarget(bpy.types.Panel):
    """Sidebar: retarget the take onto a character, ground it, export BVH/FBX."""

    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "SCAIL"
    bl_label = "Retarget & Export"
    bl_parent_id = "SCAIL_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.scail_retarget
        layout.prop(settings, "source")
        layout.prop(settings, "target")
        row = layout.row(align=True)
        row.prop(settings, "preset", text="")
        row.operator("scail.bonemap_fill", text="", icon="FILE_REFRESH")
        row.operator("scail.bonemap_load", text="", icon="FILEBROWSER")
        row.operator("scail.bonemap_save", text="", icon="FILE_TICK")
        if settings.bones:
            box = layout.box()
            target = settings.target
            for row_data in settings.bones:
                line = box.row()
                line.label(text=bonemaps.ROLES.get(row_data.key, row_data.key))
                if target is not None:
                    line.prop_search(row_data, "bone", target.data, "bones", text="")
                else:
                    line.prop(row_data, "bone", text="")
        col = layout.column(align=True)
        col.prop(settings, "use_in_place")
        col.prop(settings, "use_foot_contacts")
        op = layout.operator("scail.retarget", icon="ARMATURE_DATA")
        op.use_in_place = settings.use_in_place
        op.use_foot_contacts = settings.use_foot_contacts
        layout.operator("scail.ground_take", icon="MESH_PLANE")
        row = layout.row(align=True)
        row.operator("scail.export_bvh", text="BVH...", icon="EXPORT")
        row.operator("scail.export_fbx", text="FBX...", icon="EXPORT")


classes = (SCAIL_PG_bone_pair, SCAIL_PG_retarget, SCAIL_OT_bonemap_fill, SCAIL_OT_bonemap_save,
           SCAIL_OT_bonemap_load, SCAIL_OT_retarget, SCAIL_OT_ground_take, SCAIL_OT_export_bvh,
           SCAIL_OT_export_fbx, SCAIL_PT_retarget)


def register_properties() -> None:
    bpy.types.Scene.scail_retarget = PointerProperty(type=SCAIL_PG_retarget)


def unregister_properties() -> None:
    del bpy.types.Scene.scail_retarget
