"""Alignment to a reference image (``--use-align``, docs/pipeline.md §9), with guardrails.

Modules, one idea each: ``reference`` (find, read and estimate the reference image),
``correspondences`` (which points, which weighting), ``solve`` (m, s, p, q by bounded least
squares), ``guardrails`` (when to refuse a solve and what to use instead), ``bones`` (optional
proportions of the reference character), ``apply`` (the whole job and its record in
``PoseSequence.meta["alignment"]``). The maths Blender shares (aligned intrinsics, how the 2D
overlay follows) lives in ``scail_protocol.camera`` and ``scail_protocol.alignment``.
"""

from .apply import (META_KEY, AlignResult, align_sequence, align_to_reference, driving_frame,
                    nothing_to_align)
from .guardrails import CLAMPED, DEFAULT, FALLBACKS
from .reference import SAME, ReferencePose, estimate_reference, find_reference_image

__all__ = ["META_KEY", "AlignResult", "align_sequence", "align_to_reference", "driving_frame",
           "nothing_to_align",
           "CLAMPED", "DEFAULT", "FALLBACKS", "SAME", "ReferencePose", "estimate_reference",
           "find_reference_image"]
