"""Operators: property declarations plus one delegating call each.

The work is done by plain functions (``headless``, ``armature``, ``export``, ``render``). Work
that waits on the backend or renders many frames is a job: with a UI it is stepped by the
add-on's timer (``client``), so Blender stays responsive; in background mode (``blender -b``,
no timers) the same job runs to its end at once. Errors of this project end as
``report({'ERROR'}, ...)`` and ``{'CANCELLED'}`` (at once) or as the panel's error line (jobs).
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper
from scail_protocol.conversation import cleanup_field
from scail_protocol.errors import ScailError

from . import armature, client, headless, prefs
from .reports import fail
from .props import BLEND_RELATIVE, RENDERERS, RESOLUTIONS, estimator_items

_EXACT = BoolProperty(name="Exact Bone Lengths", default=True,
                      description="Key each bone's head so every frame's joints are reproduced "
                                  "exactly; off keeps rigid bones of the take's median lengths")


# Off for scripts; from the UI (invoke: sidebar, File > Import, drag and drop) the scene's
# setting applies, which is on by default (props.SCAIL_PG_settings.use_ground).
_GROUND = BoolProperty(name="Ground the Take", default=False,
                      description="Stand the take on a floor plane at Z = 0, facing -Y, with the "
                                  "camera moved along (the picture does not change)")


def _ground_from_scene(op, context) -> None:
    """Take the scene's grounding setting unless the caller set the operator's own."""
    if not op.properties.is_property_set("use_ground"):
        op.use_ground = context.scene.scail.use_ground


def _finished(op, done, label: str) -> set:
    """Report what a job finished at once produced (None: it runs from the timer)."""
    if done is not None:
        op.report({"INFO"}, client.describe(done, label))
    return {"FINISHED"}


class _NeedsIdleBackend:
    """Mixin: the operator is unavailable while a SCAIL job runs."""

    @classmethod
    def poll(cls, context):
        if client.busy():
            cls.poll_message_set("A SCAIL job is running: wait for it or press Cancel")
            return False
        return True


class _NeedsTake:
    """Mixin: the operator needs a SCAIL armature in the scene (an imported take)."""

    @classmethod
    def poll(cls, context):
        if context.scene is None or not armature.scail_armatures(context.scene):
            cls.poll_message_set("No SCAIL armature in the scene: import a take first")
            return False
        return super().poll(context) if hasattr(super(), "poll") else True


class SCAIL_OT_import_motion(bpy.types.Operator, ImportHelper):
    """Import a PoseSequence file (.npz) as armatures and a matching camera (no backend needed)"""

    bl_idname = "scail.import_motion"
    bl_label = "Import SCAIL Motion"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})
    video_path: StringProperty(name="Video", subtype="FILE_PATH",
                               description="Optional driving video for the camera background")
    use_exact_lengths: _EXACT
    use_ground: _GROUND

    def invoke(self, context, event):
        _ground_from_scene(self, context)
        if self.filepath:  # dropped on the viewport (menus.SCAIL_FH_poses): no file browser
            return self.execute(context)
        return ImportHelper.invoke(self, context, event)

    def execute(self, context):
        try:
            result = headless.import_motion_file(
                bpy.path.abspath(self.filepath), context=context, exact=self.use_exact_lengths,
                ground=self.use_ground,
                video_path=bpy.path.abspath(self.video_path) if self.video_path else None,
                report=self.report)
        except ScailError as e:
            return fail(self, e)
        self.report({"INFO"}, f"imported {len(result.armatures)} armature(s)")
        return {"FINISHED"}


class SCAIL_OT_import_video(_NeedsIdleBackend, bpy.types.Operator):
    """Extract the motion of a video on the backend and import it as armatures"""

    bl_idname = "scail.import_video"
    bl_label = "Import Video Motion"
    bl_options = {"REGISTER", "UNDO"}  # with a UI the timer adds the import's own undo step

    filepath: StringProperty(name="Video", subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.mp4;*.mov;*.avi;*.mkv;*.webm", options={"HIDDEN"})
    reference_path: StringProperty(name="Reference Image", subtype="FILE_PATH")
    estimator: EnumProperty(name="Estimator", items=estimator_items)
    resolution: EnumProperty(name="Resolution", items=RESOLUTIONS, default="DEFAULT")
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, max=1.0,
                             description="Temporal smoothing strength (0 = off; 0.5 = medium)")
    max_people: IntProperty(name="Max People", default=0, min=0, max=32,
                            description="Keep at most this many people (0 = all)")
    fill_gaps: IntProperty(name="Fill Gaps", default=0, min=0, max=240,
                           description="Longest gap filled, frames (0 = off)")
    use_take_fit: BoolProperty(name="Whole-Take Fit", default=False)
    use_foot_lock: BoolProperty(name="Lock Feet", default=False)
    use_align: BoolProperty(name="Align to Reference", default=False)
    use_exact_lengths: _EXACT
    use_ground: _GROUND

    def invoke(self, context, event):
        _ground_from_scene(self, context)
        if self.filepath:
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        reference = bpy.path.abspath(self.reference_path) if self.reference_path else None
        cleanup = cleanup_field(max_people=self.max_people, fill_gaps=self.fill_gaps,
                                take_fit=self.use_take_fit, foot_lock=self.use_foot_lock)
        try:
            done = headless.import_video(
                bpy.path.abspath(self.filepath), reference_path=reference,
                estimator=self.estimator, resolution=self.resolution, smoothing=self.smoothing,
                use_align=self.use_align, exact=self.use_exact_lengths, ground=self.use_ground,
                context=context, cleanup=cleanup,
                report=self.report if bpy.app.background else None,  # the timer outlives self
                blocking=bpy.app.background)
        except ScailError as e:
            return fail(self, e)
        return _finished(self, done, "import")


def start_import_job(context, video, *, exact: bool, **options) -> None:
    """Start an extract job from the timer; when it ends, build the armatures in the same
    scene/collection (``headless.import_video`` with ``blocking=False``)."""
    headless.import_video(video, exact=exact, context=context, blocking=False, **options)


class SCAIL_OT_export_motion(_NeedsTake, bpy.types.Operator, ExportHelper):
    """Export the scene's SCAIL armatures (with your edits) as a PoseSequence file (.npz)"""

    bl_idname = "scail.export_motion"
    bl_label = "Export SCAIL Motion"

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})

    def execute(self, context):
        try:
            path = headless.export_motion_file(self.filepath, context=context,
                                               report=self.report)  # "//" resolved there
        except ScailError as e:
            return fail(self, e)
        self.report({"INFO"}, f"wrote {path}")
        return {"FINISHED"}


class SCAIL_OT_render_conditioning(_NeedsTake, _NeedsIdleBackend, bpy.types.Operator):
    """Render the SCAIL conditioning video (.mp4, 16 fps) of the scene's armatures"""

    bl_idname = "scail.render_conditioning"
    bl_label = "Render Conditioning Video"

    filepath: StringProperty(name="Output", subtype="FILE_PATH", default="//rendered.mp4",
                             options=BLEND_RELATIVE,
                             description="Conditioning video to write (.mp4); // is the saved "
                                         ".blend file's folder")
    renderer: EnumProperty(name="Renderer", items=RENDERERS, default="BLENDER")
    use_overlay: BoolProperty(name="2D Overlay", default=True)

    def execute(self, context):
        try:
            done = headless.render_conditioning(  # "//" resolved there, with its checks
                self.filepath, self.renderer, overlay=self.use_overlay,
                context=context, report=self.report, blocking=bpy.app.background)
        except ScailError as e:
            return fail(self, e)
        return _finished(self, done, "render")


def start_render_job(context, path, renderer: str, *, overlay: bool) -> None:
    """Render from the timer: frame by frame in Blender, or on the backend and downloaded."""
    headless.render_conditioning(path, renderer, overlay=overlay, context=context,
                                 blocking=False)


class SCAIL_OT_cancel(bpy.types.Operator):
    """Cancel the running SCAIL job"""

    bl_idname = "scail.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if not client.cancel():
            self.report({"WARNING"}, "nothing to cancel")
            return {"CANCELLED"}
        return {"FINISHED"}


class SCAIL_OT_connect(_NeedsIdleBackend, bpy.types.Operator):
    """Ask the backend for its device and estimators"""

    bl_idname = "scail.connect"
    bl_label = "Connect"

    def execute(self, context):
        try:
            done = client.connect(prefs.backend_settings(context), blocking=bpy.app.background)
        except ScailError as e:
            return fail(self, e)
        return _finished(self, done, "connect")


class SCAIL_OT_start_backend(bpy.types.Operator):
    """Start a local backend with the command set in the add-on preferences"""

    bl_idname = "scail.start_backend"
    bl_label = "Start Local Backend"

    def execute(self, context):
        try:
            pid = client.start_local_backend(prefs.backend_settings(context))
        except ScailError as e:
            return fail(self, e)
        self.report({"INFO"}, f"started the backend (pid {pid}); press Connect once it is up")
        return {"FINISHED"}


classes = (
    SCAIL_OT_import_motion,
    SCAIL_OT_import_video,
    SCAIL_OT_export_motion,
    SCAIL_OT_render_conditioning,
    SCAIL_OT_cancel,
    SCAIL_OT_connect,
    SCAIL_OT_start_backend,
)
