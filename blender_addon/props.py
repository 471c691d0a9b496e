"""Property groups: the panel's import/render settings (saved with the scene) and the live
backend/job status (on the window manager, never saved)."""

from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)
from scail_protocol.contract import DEFAULT_RESOLUTION

# Options of a path property whose "//" means the saved .blend's folder: Blender 4.5+ warns when
# a property that does not say so is given such a path (4.2 has no such option).
BLEND_RELATIVE = {"PATH_SUPPORTS_BLEND_RELATIVE"} if bpy.app.version >= (4, 5, 0) else set()

# Offered until a backend has said which estimators it can run (Connect, or an import's hello);
# from then on the menu offers exactly those (scail_backend.estimators.registry decides).
ESTIMATORS = (
    ("AUTO", "Auto", "the backend's best estimator that can run there"),
    ("MEDIAPIPE", "MediaPipe", "embedded estimator: no download, no GPU"),
    ("NLF", "NLF", "studio-grade YOLOX + DWPose + NLF (needs the weights on the backend)"),
)
_offered = []  # Blender needs the item strings of a dynamic enum kept alive


def estimator_items(self, context):
    """The estimator menu: what the connected backend can run, else :data:`ESTIMATORS`."""
    wm = getattr(context, "window_manager", None) if context is not None else None
    status = getattr(wm, "scail_status", None)
    names = [n for n in (status.estimators.split(", ") if status else []) if n and n != "auto"]
    if not names:
        return ESTIMATORS
    known = {identifier: (label, text) for identifier, label, text in ESTIMATORS}
    items = [ESTIMATORS[0]] + [
        (name.upper(), *known.get(name.upper(), (name, f"the backend's {name} estimator")))
        for name in names]
    _offered[:] = items
    return _offered
# Working size (H x W for landscape input; the backend swaps it for portrait), as the CLI's
# --resolution. SCAIL itself is trained at 512 x 896.
RESOLUTIONS = (
    ("DEFAULT", "Default (%d × %d)" % DEFAULT_RESOLUTION, "the backend's default working size, "
                                                            "SCAIL's own"),
    ("480x832", "480 × 832", "a little smaller than SCAIL's size"),
    ("720x1280", "720 × 1280", "larger: finer 2D overlay strokes"),
    ("256x448", "256 × 448", "quick previews"),
)
RENDERERS = (
    ("BLENDER", "Blender", "render the capsules with Cycles in this Blender"),
    ("BACKEND", "Backend", "send the edited motion to the backend's taichi renderer"),
)


class SCAIL_PG_settings(bpy.types.PropertyGroup):
    """What the SCAIL panel imports and renders (one per scene)."""

    video_path: StringProperty(name="Video", subtype="FILE_PATH",
                               description="Driving video to extract the motion from")
    reference_path: StringProperty(name="Reference", subtype="FILE_PATH",
                                   description="Optional reference image of the character "
                                               "(used with Align)")
    estimator: EnumProperty(name="Estimator", items=estimator_items)
    resolution: EnumProperty(name="Resolution", items=RESOLUTIONS, default="DEFAULT",
                             description="Working size H × W for landscape video (swapped for "
                                         "portrait)")
    smoothing: FloatProperty(name="Smoothing", default=0.0, min=0.0, max=1.0,
                             description="Temporal smoothing of the motion on the backend "
                                         "(One Euro filter): 0 = off, as the reference; "
                                         "0.25 light, 0.5 medium, 0.75 strong")
    max_people: IntProperty(name="Max People", default=0, min=0, max=32,
                            description="Keep at most this many people, the most prominent "
                                        "(0 = every person found)")
    fill_gaps: IntProperty(name="Fill Gaps", default=0, min=0, max=240,
                           description="Interpolate joints missing for at most this many "
                                       "frames; longer gaps stay missing (0 = off)")
    use_take_fit: BoolProperty(name="Whole-Take Fit", default=False,
                               description="One skeleton for the take, posed to the 2D "
                                           "evidence (less jitter, planted feet stay put)")
    use_foot_lock: BoolProperty(name="Lock Feet", default=False,
                                description="Keep feet that touch the ground in place "
                                            "(pinned while in contact, blended in and out)")
    use_align: BoolProperty(name="Align to Reference", default=False,
                            description="Solve the camera so the motion overlays the reference "
                                        "image's character")
    use_exact_lengths: BoolProperty(
        name="Exact Bone Lengths", default=True,
        description="Key each bone's head so every frame's joints are reproduced exactly; off "
                    "keeps rigid bones of the take's median lengths")
    use_ground: BoolProperty(name="Ground the Take", default=True,
                             description="Stand the take on a floor plane at Z = 0, facing -Y, "
                                         "with the camera moved along (the picture does not "
                                         "change)")
    render_path: StringProperty(name="Output", subtype="FILE_PATH", default="//rendered.mp4",
                                options=BLEND_RELATIVE,
                                description="Conditioning video to write (.mp4, 16 fps); // is "
                                            "the saved .blend file's folder")
    renderer: EnumProperty(name="Renderer", items=RENDERERS, default="BLENDER")
    use_overlay: BoolProperty(name="2D Overlay", default=True,
                              description="Draw the hands, face and head strokes on top")


class SCAIL_PG_status(bpy.types.PropertyGroup):
    """Live state of the backend connection and the running job (runtime only)."""

    connected: BoolProperty(name="Connected", default=False)
    server: StringProperty(name="Server")
    device: StringProperty(name="Device")
    estimators: StringProperty(name="Estimators")
    unavailable: StringProperty(name="Unavailable", description="Estimators the backend cannot "
                                                               "run, and why")
    can_align: BoolProperty(name="Backend Aligns", default=False)
    busy: BoolProperty(name="Busy", default=False)
    stage: StringProperty(name="Stage")
    progress: FloatProperty(name="Progress", default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    message: StringProperty(name="Message")
    error: StringProperty(name="Error")


classes = (SCAIL_PG_settings, SCAIL_PG_status)


def register_properties() -> None:
    bpy.types.Scene.scail = PointerProperty(type=SCAIL_PG_settings)
    bpy.types.WindowManager.scail_status = PointerProperty(type=SCAIL_PG_status)


def unregister_properties() -> None:
    del bpy.types.WindowManager.scail_status
    del bpy.types.Scene.scail
