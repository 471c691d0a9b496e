"""The render task of a batch: a clip's estimated poses become its output files.

:func:`render_clip` is a plain function; the batch runs it as a Ray task of one CPU
(``ray.remote``), given the poses an estimation actor returned (through Ray's object store:
a few arrays of joints). It is the second half of ``scail-pose run``
(:func:`scail_backend.pipeline.write_folder`): render, encode and save, every output written
to a temporary and renamed into place at the end, so a task that is cancelled or killed leaves
no half-written file under an output's name.
"""

from __future__ import annotations

import time

from scail_protocol.errors import ScailError

from .clipdir import remove_partial
from .report import DONE, FAILED, one_line
from .resources import render_arch


def render_clip(poses, arch: str = "auto") -> dict:
    """Render and write one clip's outputs into its folder.

    Args:
        poses: the ``pipeline.FolderPoses`` of the clip (from ``ClipEstimator.estimate``).
        arch: the renderer arch asked for ("auto" renders on the CPU: see ``resources``).

    Returns:
        {"status": "done", "frames", "found", "warnings", "seconds"} or {"status": "failed",
        "error": one line, "seconds"}. Never raises for a bad clip.
    """
    from ..pipeline import write_folder

    start = time.perf_counter()
    try:
        result = write_folder(poses, arch=render_arch(arch))
    except ScailError as e:
        error = one_line(e)
    except Exception as e:  # a bug or a library error: one line, the batch goes on
        error = one_line(f"{type(e).__name__}: {e}")
    else:
        return {"status": DONE, "frames": result.sequence.num_frames,
                "found": result.frames_with_person, "warnings": list(result.warnings),
                "seconds": time.perf_counter() - start}
    remove_partial(poses.folder)
    return {"status": FAILED, "error": error, "seconds": time.perf_counter() - start}
