"""Align a PoseSequence to a reference character (docs/pipeline.md §9), with guardrails.

``align_to_reference`` is the whole job: estimate the reference image's pose, match it with the
driving pose of the first frame that has a person, solve the camera, check it, then move the 2D
overlay and store everything in ``meta["alignment"]``. The aligned sequence carries the aligned
intrinsics as its ``K`` and the moved overlay as its ``kp2d``, so rendering it (now or later,
from its ``.npz``) gives the aligned video, and the Blender import (which builds its camera from
``K``) gives the aligned camera. ``meta["alignment"]["K_estimated"]`` keeps K₀.

The aligned camera applies to every person of the sequence; the solve matches the driving
person who appears first (the reference keeps only one person in this mode).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from scail_protocol import joints as J
from scail_protocol.alignment import face_scale, move_overlay
from scail_protocol.camera import MIN_DEPTH_MM
from scail_protocol.errors import AlignError
from scail_protocol.sequence import PoseSequence

from . import correspondences, guardrails
from .bones import adapt_bones, seen_joints
from .reference import SAME, ReferencePose, estimate_reference, estimator_name
from .solve import solve

log = logging.getLogger(__name__)

META_KEY = "alignment"
STAGE = "align"   # progress stage name


@dataclass(frozen=True)
class AlignResult:
    """What an alignment did.

    Attributes:
        sequence: the aligned PoseSequence (its meta["alignment"] holds the record below).
        record: the JSON record stored in meta["alignment"].
        message: one line for the user (the solve, or the fallback and why).
    """

    sequence: PoseSequence
    record: dict
    message: str

    @property
    def fallback(self) -> Optional[str]:
        return self.record.get("fallback")


def driving_frame(seq: PoseSequence) -> tuple:
    """(person, frame) of the first frame in which someone has 3D body joints, all of them in
    front of the camera. Frames whose body joints reach to or behind the camera (an estimator
    glitch) are passed over; when every frame with a person has such a joint, the first frame
    with a person is returned (the solve then falls back to the default camera).

    Raises:
        AlignError: nobody in any frame, or only 2D points and no 3D joints.
    """
    return _driving_frame(seq, *_body_masks(seq))


def _driving_frame(seq: PoseSequence, has: np.ndarray, behind: np.ndarray) -> tuple:
    """:func:`driving_frame` from the masks of :func:`_body_masks`."""
    frames = np.flatnonzero(has.any(0))
    if len(frames) == 0:
        if np.isfinite(np.asarray(seq.kp2d)).all(-1).any():
            raise AlignError("the driving poses have 2D points but no 3D joints in any frame; "
                             "alignment needs them: extract the poses with `scail-pose extract`")
        raise AlignError("the driving poses have no person in any frame; there is nothing to "
                         "align")
    usable = has & ~behind
    pick = usable if usable.any() else has
    t = int(np.flatnonzero(pick.any(0))[0])
    return int(np.flatnonzero(pick[:, t])[0]), t


def _body_masks(seq: PoseSequence) -> tuple:
    """(has, behind), each (P, T) bool: the person has some 3D body joint (OpenPose 0-13) in
    the frame; one of those joints is at or behind the camera."""
    body = seq.openpose18_3d()[:, :, :14]
    with np.errstate(invalid="ignore"):
        return np.isfinite(body).all(-1).any(-1), (body[..., 2] < MIN_DEPTH_MM).any(-1)


def align_sequence(seq: PoseSequence, reference: ReferencePose, *,
                   fallback: str = guardrails.CLAMPED, adapt: bool = False) -> AlignResult:
    """Align a sequence to an already estimated reference pose.

    Args:
        seq: the driving poses (not aligned yet), K = K₀.
        reference: the reference character (:func:`reference.estimate_reference`) at the
            sequence's size.
        fallback: "clamped" (the default) or "default": what a solve that ended on its bounds
            becomes (``guardrails``).
        adapt: also adapt the bone lengths to the reference's proportions (``bones``).

    Raises:
        AlignError: the sequence is already aligned, sizes differ, or it has nobody (or only
            2D points, no 3D joints).
    """
    if META_KEY in seq.meta:
        raise AlignError(f"these poses are already aligned (to "
                         f"{seq.meta[META_KEY].get('reference')}); align the unaligned poses")
    if tuple(reference.size) != tuple(seq.size):
        raise AlignError(f"the reference pose is {reference.size}, the poses {seq.size}; "
                         f"estimate the reference at the poses' working size")
    has, behind = _body_masks(seq)
    person, t = _driving_frame(seq, has, behind)
    glitches = int((has & behind).any(0).sum())
    if glitches and (has & ~behind).any():   # else the fallback below says it
        log.warning("%d of %d driving frame(s) have a body joint at or behind the camera (an "
                    "estimator glitch?); the camera solve uses frame %d", glitches,
                    seq.num_frames, t)
    elif t > 0:
        log.info("nobody in driving frame 0: aligning with frame %d, the first with a person", t)
    K0 = np.array(seq.K)
    joints = np.array(seq.joints3d, dtype=np.float64)
    ratios = None
    if adapt:
        adapted, ratios = adapt_bones(joints, reference.joints3d,
                                      seen_joints(reference.kp2d_score[J.BODY]))
    else:
        adapted = joints
    op18 = J.smpl24_to_openpose18(adapted)
    target = correspondences.reference_points(reference.kp2d[J.BODY],
                                              reference.kp2d_score[J.BODY])
    corr = correspondences.select(target, op18[person, t])
    unsolved = None
    if (corr.points3d[:, 2] < MIN_DEPTH_MM).any():   # solve() would refuse it
        unsolved = (f"a matched joint of driving frame {t} is at or behind the camera"
                    + ("" if (has & ~behind).any() else ", as in every frame with a person"))
    solution = solve(corr, K0, seq.size) if len(corr.indices) >= 2 and not unsolved else None
    decision = guardrails.decide(solution, len(corr.indices), K0, seq.size, op18, fallback,
                                 unsolved=unsolved)
    m, s, p, q = decision.params
    scale = 1.0
    if decision.fallback is None:
        scale = face_scale(seq.kp2d[person, t, J.FACE], reference.kp2d[J.FACE], seq.size)
    kp2d = move_overlay(seq.kp2d, joints, K0, adapted, decision.K, face_scale_factor=scale,
                        hand_scale_xy=(m, m * s))
    record = _record(reference, corr, solution, decision, scale, person, t, K0, ratios, fallback)
    message = _message(record)
    aligned = seq.replace(K=decision.K, kp2d=kp2d, joints3d=adapted.astype(np.float32),
                          meta=dict(seq.meta, **{META_KEY: record}))
    return AlignResult(sequence=aligned, record=record, message=message)


def align_to_reference(seq: PoseSequence, image, *, estimator: str = SAME, weights_dir=None,
                       fallback: str = guardrails.CLAMPED, adapt: bool = False,
                       progress=None, name: Optional[str] = None) -> AlignResult:
    """Estimate the reference image's pose and align the sequence to it.

    Args:
        seq: the driving poses.
        image: the reference image file.
        estimator: "same" (the one that made ``seq``; the default), or a registry name.
        weights_dir: where the nlf weights live.
        fallback, adapt: as :func:`align_sequence`.
        progress: ``progress("align", done, total)``; may raise Cancelled.
        name: the image's name for the record and messages (default: its file name; the server
            passes the client's name of an uploaded image).

    Raises:
        AlignError: nobody in the image or in the poses; already aligned.
        VideoError: the image cannot be read. WeightsMissing, EstimatorError.
    """
    if META_KEY in seq.meta:  # before the estimator is loaded
        raise AlignError(f"these poses are already aligned (to "
                         f"{seq.meta[META_KEY].get('reference')}); align the unaligned poses")
    driving_frame(seq)  # nobody to align: say so before the estimator loads
    if progress:
        progress(STAGE, 0, 2)
    reference = estimate_reference(image, seq.size, seq.K, estimator=estimator_name(
        estimator, seq.meta), weights_dir=weights_dir)
    if name:
        reference = dataclasses.replace(reference, path=Path(name))
    if progress:
        progress(STAGE, 1, 2)
    result = align_sequence(seq, reference, fallback=fallback, adapt=adapt)
    if result.fallback:
        log.warning("%s", result.message)
    else:
        log.info("%s", result.message)
    if progress:
        progress(STAGE, 2, 2)
    return result


def nothing_to_align(seq: PoseSequence, reference, why: str, *,
                     fallback: str = guardrails.CLAMPED) -> AlignResult:
    """The "aligned" sequence when there is nothing to align (nobody in the driving poses): the
    poses unchanged, with the default camera, and a record whose ``fallback`` says ``why``.

    ``run DIR --use-align`` writes it as it writes an alignment that fell back, so a clip with
    nobody in it gives the aligned outputs (all black) as ``run`` without alignment does. No
    estimator runs.

    Args:
        seq: the driving poses (not aligned yet).
        reference: the reference image file (only its name is recorded).
        why: the reason, e.g. "nobody in the driving poses".
        fallback: the policy recorded (as :func:`align_sequence`).

    Raises:
        AlignError: the sequence is already aligned.
    """
    if META_KEY in seq.meta:
        raise AlignError(f"these poses are already aligned (to "
                         f"{seq.meta[META_KEY].get('reference')}); align the unaligned poses")
    K0 = np.asarray(seq.K, dtype=np.float64).tolist()
    m, s, p, q = guardrails.IDENTITY
    record = {
        "reference": Path(reference).name, "reference_people": None, "reference_person": None,
        "estimator": None, "variant": None, "points": [], "driving_person": None,
        "driving_frame": None, "m": m, "s": s, "p": p, "q": q, "K": K0, "K_estimated": K0,
        "residual_px": None, "solved": None, "fallback": f"{why}; using the default camera",
        "fallback_policy": fallback, "checks": {"points": 0}, "face_scale": 1.0,
        "hand_scale": [m, m * s], "adapt_bones": False, "bone_ratios": None,
    }
    aligned = seq.replace(meta=dict(seq.meta, **{META_KEY: record}))
    return AlignResult(sequence=aligned, record=record, message=_message(record))


def _record(reference, corr, solution, decision, scale, person, t, K0, ratios, policy) -> dict:
    m, s, p, q = decision.params
    solved = None
    if solution is not None:
        solved = {"m": solution.m, "s": solution.s, "p": solution.p, "q": solution.q,
                  "residual_px": solution.residual_px, "max_error_px": solution.max_error_px,
                  "on_bound": list(solution.on_bound)}
    return {
        "reference": reference.path.name,
        "reference_people": reference.people,
        "reference_person": reference.person,
        "estimator": reference.estimator,
        "variant": corr.variant,
        "points": [J.OPENPOSE18_NAMES[i] for i in corr.indices],
        "driving_person": person,
        "driving_frame": t,
        "m": m, "s": s, "p": p, "q": q,
        "K": np.asarray(decision.K).tolist(),
        "K_estimated": np.asarray(K0).tolist(),
        "residual_px": solution.residual_px if solution is not None else None,
        "solved": solved,
        "fallback": decision.fallback,
        "fallback_policy": policy,
        "checks": decision.checks,
        "face_scale": scale,
        "hand_scale": [m, m * s],
        "adapt_bones": ratios is not None,
        "bone_ratios": None if ratios is None else [round(float(r), 6) for r in ratios],
    }


def _message(record: dict) -> str:
    points = len(record["points"])
    if record["fallback"]:
        how = f" ({record['variant']} variant, {points} points)" if record["variant"] else ""
        return f"alignment to {record['reference']} not used{how}: {record['fallback']}"
    clamped = record["checks"].get("clamped")
    return (f"aligned to {record['reference']} ({record['variant']} variant, {points} points, "
            f"driving frame {record['driving_frame']}): m={record['m']:.4f} s={record['s']:.4f} "
            f"p={record['p']:.1f} q={record['q']:.1f} px, RMS error {record['residual_px']:.1f} "
            f"px, face scale {record['face_scale']:.3f}" + (f"; {clamped}" if clamped else ""))
