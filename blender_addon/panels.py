"""The "SCAIL" tab of the 3D view's sidebar (N panel): backend status, import, render."""

from __future__ import annotations

import bpy


class _SidebarPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "SCAIL"


class SCAIL_PT_main(_SidebarPanel, bpy.types.Panel):
    """Backend status and the running job."""

    bl_label = "SCAIL Pose Studio"
    bl_idname = "SCAIL_PT_main"

    def draw(self, context):
        layout = self.layout
        status = context.window_manager.scail_status
        row = layout.row(align=True)
        if status.connected:
            row.label(text=f"Backend: {status.device or '?'}", icon="LINKED")
        else:
            row.label(text="Backend: not connected", icon="UNLINKED")
        row.operator("scail.connect", text="", icon="FILE_REFRESH")
        row.operator("scail.start_backend", text="", icon="PLAY")
        if status.estimators:
            layout.label(text=f"Estimators: {status.estimators}")
        for line in _wrap(status.unavailable, 42):  # why the others cannot run there
            layout.label(text=line, icon="INFO")
        if status.busy:
            box = layout.box()
            text = f"{status.stage}" if status.stage else "working"
            box.progress(factor=status.progress, type="BAR", text=text)
            box.operator("scail.cancel", icon="CANCEL")
        elif status.message:
            layout.label(text=status.message, icon="INFO")
        if status.error:
            box = layout.box()
            box.alert = True
            for i, line in enumerate(_wrap(status.error, 42)):
                box.label(text=line, icon="ERROR" if i == 0 else "BLANK1")


class SCAIL_PT_import(_SidebarPanel, bpy.types.Panel):
    """Video (through the backend) or PoseSequence file import."""

    bl_label = "Import"
    bl_parent_id = "SCAIL_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.scail
        status = context.window_manager.scail_status
        layout.prop(settings, "video_path")
        layout.prop(settings, "reference_path")
        col = layout.column(align=True)
        col.prop(settings, "estimator")
        col.prop(settings, "resolution")
        col.prop(settings, "smoothing", slider=True)
        col.prop(settings, "max_people")
        col.prop(settings, "fill_gaps")
        col.prop(settings, "use_take_fit")
        col.prop(settings, "use_foot_lock")
        row = col.row()
        # a connected backend without the align capability cannot align (hello, docs/wire.md)
        row.enabled = bool(settings.reference_path) and (status.can_align or not status.connected)
        row.prop(settings, "use_align")
        if not row.enabled:  # greyed out: say why
            why = ("the backend cannot align" if status.connected and not status.can_align
                   else "pick a reference image to align to")
            col.label(text=f"Align: {why}", icon="INFO")
        layout.prop(settings, "use_exact_lengths")
        layout.prop(settings, "use_ground")
        op = layout.operator("scail.import_video", text="Import Video", icon="IMPORT")
        op.filepath = settings.video_path
        op.reference_path = settings.reference_path
        op.estimator = settings.estimator
        op.resolution = settings.resolution
        op.smoothing = settings.smoothing
        op.max_people = settings.max_people
        op.fill_gaps = settings.fill_gaps
        op.use_take_fit = settings.use_take_fit
        op.use_foot_lock = settings.use_foot_lock
        op.use_align = settings.use_align and bool(settings.reference_path)
        op.use_exact_lengths = settings.use_exact_lengths
        op.use_ground = settings.use_ground
        motion = layout.operator("scail.import_motion", text="Import Motion File...", icon="FILE")
        motion.use_ground = settings.use_ground


class SCAIL_PT_render(_SidebarPanel, bpy.types.Panel):
    """Conditioning video render and motion export."""

    bl_label = "Render"
    bl_parent_id = "SCAIL_PT_main"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.scail
        layout.prop(settings, "render_path")
        layout.prop(settings, "renderer", expand=True)
        layout.prop(settings, "use_overlay")
        op = layout.operator("scail.render_conditioning", icon="RENDER_ANIMATION")
        op.filepath = settings.render_path
        op.renderer = settings.renderer
        op.use_overlay = settings.use_overlay
        layout.operator("scail.export_motion", text="Export Motion File...", icon="EXPORT")


def _wrap(text: str, width: int) -> list:
    """Split a message into lines of at most ``width`` characters at spaces."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + [line] if line else lines


classes = (SCAIL_PT_main, SCAIL_PT_import, SCAIL_PT_render)
