"""Operators: property declarations plus one delegating call each.

The work is done by plain functions (``headless``, ``armature``, ``export``, ``render``). With a
UI, work that waits on the backend or renders many frames runs as a job stepped by the add-on's
timer (``client``), so Blender stays responsive; in background mode (``blender -b``) the same
functions run synchronously. Errors of this project end as ``report({'ERROR'}, ...)`` and
``{'CANCELLED'}`` (synchronous) or as the panel's error line (jobs).
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper
from scail_protocol.errors import ScailError

from . import armature, client, headless, jobs, prefs, render
from .props import ESTIMATORS, RENDERERS, RESOLUTIONS

_EXACT = BoolProperty(name="Exact Bone Lengths", default=True,
                      description="Key each bone's head so every frame's joints are reproduced "
                                  "exactly; off keeps rigid bones of the take's median lengths")


def _fail(op, error) -> set:
    op.report({"ERROR"}, str(error))
    return {"CANCELLED"}


class _NeedsIdleBackend:
    """Mixin: the operator is unavailable while a SCAIL job runs."""

    @classmethod
    def poll(cls, context):
        return not client.busy()


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

    def execute(self, context):
        try:
            result = headless.import_motion_file(
                bpy.path.abspath(self.filepath), context=context, exact=self.use_exact_lengths,
                video_path=bpy.path.abspath(self.video_path) if self.video_path else None,
                report=self.report)
        except ScailError as e:
            return _fail(self, e)
        self.report({"INFO"}, f"imported {len(result.armatures)} armature(s)")
        return {"FINISHED"}


class SCAIL_OT_import_video(_NeedsIdleBackend, bpy.types.Operator):
    """Extract the motion of a video on the backend and import it as armatures"""

    bl_idname = "scail.import_video"
    bl_label = "Import Video Motion"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="Video", subtype="FILE_PATH")
    filter_glob: StringProperty(default="*.mp4;*.mov;*.avi;*.mkv;*.webm", options={"HIDDEN"})
    reference_path: StringProperty(name="Reference Image", subtype="FILE_PATH")
    estimator: EnumProperty(name="Estimator", items=ESTIMATORS, default="AUTO")
    resolution: EnumProperty(name="Resolution", items=RESOLUTIONS, default="DEFAULT")
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, max=1.0,
                             description="Temporal smoothing strength (0 = off; 0.5 = medium)")
    use_align: BoolProperty(name="Align to Reference", default=False)
    use_exact_lengths: _EXACT

    def invoke(self, context, event):
        if self.filepath:
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        video = bpy.path.abspath(self.filepath)
        reference = bpy.path.abspath(self.reference_path) if self.reference_path else None
        options = dict(reference_path=reference, estimator=self.estimator,
                       resolution=self.resolution, smoothing=self.smoothing,
                       use_align=self.use_align)
        try:
            if bpy.app.background:
                headless.import_video(video, exact=self.use_exact_lengths, context=context,
                                      report=self.report, **options)
            else:
                start_import_job(context, video, exact=self.use_exact_lengths, **options)
        except ScailError as e:
            return _fail(self, e)
        return {"FINISHED"}


def start_import_job(context, video, *, exact: bool, reference_path=None, **options) -> None:
    """Submit an extract job; when it ends, build the armatures in the same scene/collection."""
    headless.check_inputs(video, reference_path if options.get("use_align") else None)
    body = jobs.extract_options(reference_path=reference_path, **options)
    job = jobs.ExtractJob(client.backend(prefs.backend_settings(context)), video, body)
    scene_name, collection_name = context.scene.name, context.collection.name

    def build(seq):
        scene = bpy.data.scenes.get(scene_name) or bpy.context.scene
        collection = bpy.data.collections.get(collection_name) or scene.collection
        result = client.in_window_context(
            armature.import_sequence, seq, collection, scene=scene, video_path=video,
            name=headless.take_name(video), exact=exact)
        return f"imported {len(result.armatures)} armature(s)"

    client.start(job, on_done=build)


class SCAIL_OT_export_motion(bpy.types.Operator, ExportHelper):
    """Export the scene's SCAIL armatures (with your edits) as a PoseSequence file (.npz)"""

    bl_idname = "scail.export_motion"
    bl_label = "Export SCAIL Motion"

    filename_ext = ".npz"
    filter_glob: StringProperty(default="*.npz", options={"HIDDEN"})

    def execute(self, context):
        try:
            path = headless.export_motion_file(bpy.path.abspath(self.filepath), context=context,
                                               report=self.report)
        except ScailError as e:
            return _fail(self, e)
        self.report({"INFO"}, f"wrote {path}")
        return {"FINISHED"}


class SCAIL_OT_render_conditioning(_NeedsIdleBackend, bpy.types.Operator):
    """Render the SCAIL conditioning video (.mp4, 16 fps) of the scene's armatures"""

    bl_idname = "scail.render_conditioning"
    bl_label = "Render Conditioning Video"

    filepath: StringProperty(name="Output", subtype="FILE_PATH", default="//rendered.mp4")
    renderer: EnumProperty(name="Renderer", items=RENDERERS, default="BLENDER")
    use_overlay: BoolProperty(name="2D Overlay", default=True)

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        try:
            if bpy.app.background:
                headless.render_conditioning(path, self.renderer, overlay=self.use_overlay,
                                             context=context, report=self.report)
            else:
                start_render_job(context, path, self.renderer, overlay=self.use_overlay)
        except ScailError as e:
            return _fail(self, e)
        return {"FINISHED"}


def start_render_job(context, path, renderer: str, *, overlay: bool) -> None:
    """Export the armatures now, then render frame by frame (Blender) or on the backend."""
    seq = headless.export_scene(context)
    path = render.check_output(path)
    if renderer == "BACKEND":
        job = jobs.RenderJob(client.backend(prefs.backend_settings(context)), seq, path)
    else:
        job = jobs.LocalJob("render", render.conditioning_steps(seq, path, overlay=overlay))
    client.start(job, on_done=lambda out: f"wrote {out}")


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
        settings = prefs.backend_settings(context)
        try:
            if bpy.app.background:
                with client.open_client(settings) as backend:
                    self.report({"INFO"}, f"backend {backend.address}: {backend.hello()}")
            else:
                client.connect(settings)
        except ScailError as e:
            return _fail(self, e)
        return {"FINISHED"}


class SCAIL_OT_start_backend(bpy.types.Operator):
    """Start a local backend with the command set in the add-on preferences"""

    bl_idname = "scail.start_backend"
    bl_label = "Start Local Backend"

    def execute(self, context):
        try:
            pid = client.start_local_backend(prefs.backend_settings(context))
        except ScailError as e:
            return _fail(self, e)
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
