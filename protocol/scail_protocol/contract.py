"""The output contract: what every conditioning video is, whoever makes it.

The backend's taichi renderer, Blender's renderer, the video writer, the reader's rate for
stills and the synthetic clips all take these values from here (docs/pipeline.md §1, §6–8), so
the two renderers cannot drift apart.
"""

from __future__ import annotations

import numpy as np

from .palette import LIMB_ALPHA

OUTPUT_FPS = 16  # docs/pipeline.md §8: the conditioning video's rate, whatever the source's
DEFAULT_RESOLUTION = (512, 896)  # docs/pipeline.md §1.1: working (H, W) of a landscape clip
HIT_ALPHA = int(LIMB_ALPHA * 255.0)  # docs/pipeline.md §6.4: a hit pixel's alpha (0.8 -> 204)
POSES_SUFFIX = ".npz"   # a PoseSequence file (scail_protocol.sequence)
VIDEO_SUFFIX = ".mp4"   # the conditioning video: H.264 in MP4, whatever -o is called

# A SCAIL folder (docs/pipeline.md §1.1): what `run`, the batch and the server's run job read and
# write, by name.
DRIVING_VIDEO = "driving.mp4"
# §1.1 tries the first three; SCAIL itself also reads ref.png (§14.19)
REFERENCE_IMAGE_NAMES = ("ref_image.jpg", "ref_image.png", "ref.jpg", "ref.png")
POSES_FILE = "poses.npz"
RENDERED_FILE = "rendered.mp4"
ALIGNED_POSES_FILE = "poses_aligned.npz"        # --use-align (§1.1 names the video)
ALIGNED_RENDERED_FILE = "rendered_aligned.mp4"
RUN_OUTPUTS = (POSES_FILE, RENDERED_FILE, ALIGNED_POSES_FILE, ALIGNED_RENDERED_FILE)


def run_outputs(use_align: bool = False) -> tuple:
    """The files a run writes into its folder: poses.npz and rendered.mp4, or with --use-align
    poses.npz and the aligned pair (it leaves rendered.mp4 alone)."""
    if use_align:
        return (POSES_FILE, ALIGNED_POSES_FILE, ALIGNED_RENDERED_FILE)
    return (POSES_FILE, RENDERED_FILE)


def composite_channels(under_rgb: np.ndarray, overlay_rgb: np.ndarray) -> np.ndarray:
    """The 2D overlay over a render, channel by channel (docs/pipeline.md §7).

    Each non-zero R, G or B value of the overlay replaces the render's value of that channel;
    a zero channel keeps the render's. E.g. overlay (0, 0, 255) over (100, 100, 100) gives
    (100, 100, 255).

    Args:
        under_rgb: (..., 3) uint8 render colours.
        overlay_rgb: (..., 3) uint8 overlay colours, same shape.

    Returns:
        (..., 3) uint8, a new array.
    """
    return np.where(overlay_rgb != 0, overlay_rgb, under_rgb).astype(np.uint8)
