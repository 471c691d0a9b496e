"""The estimator registry: which estimators exist, which can run here and why not, picking one.

One table, :data:`ESTIMATORS`, names each estimator's class by module and class name; a class is
imported only when it is asked about, and estimator modules import their heavy libraries
(mediapipe, torch, onnxruntime) inside methods, so asking is cheap and this module imports no
estimator (no import circle with ``base``).

Every estimator class says whether it can run here::

    ok, reason = SomeEstimator.availability(weights_dir=None, device=None)

and is built with the same keywords: ``SomeEstimator(weights_dir=..., device=...)``.
``auto`` is the first of :data:`AUTO_ORDER` that can run. The CLI's choices, the server's
``hello`` capabilities (:func:`capabilities`) and, through ``hello``, the Blender panel's
estimator menu all derive from this table.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Optional, Tuple

from scail_protocol.errors import EstimatorError, ScailError

log = logging.getLogger(__name__)

AUTO = "auto"

ESTIMATORS = {  # name -> (module, class); imported on first use
    "mediapipe": ("scail_backend.estimators.mediapipe_holistic", "MediaPipeHolisticEstimator"),
    "nlf": ("scail_backend.estimators.nlf", "NLFEstimator"),
}
AUTO_ORDER = ("nlf", "mediapipe")  # auto takes the first of these that can run here


@dataclass(frozen=True)
class Availability:
    """Whether an estimator can run here.

    Attributes:
        name: the estimator's registry name.
        ok: True when it can be created and run with the given options.
        reason: empty when ``ok``; else one sentence saying why not and what to do.
        label: short human name (menus, ``--help``).
    """

    name: str
    ok: bool
    reason: str
    label: str


def names() -> Tuple[str, ...]:
    """Every name :func:`resolve` accepts, ``auto`` first."""
    return (AUTO,) + tuple(ESTIMATORS)


def estimator_class(name: str):
    """The class registered under ``name`` (imports its module).

    Raises:
        EstimatorError: unknown name (the message lists the choices).
    """
    try:
        module_name, class_name = ESTIMATORS[name]
    except KeyError:
        raise EstimatorError(f"unknown estimator {name!r}; choose one of "
                             f"{', '.join(names())}") from None
    return getattr(importlib.import_module(module_name), class_name)


def availability(name: str, *, weights_dir=None, device: Optional[str] = None) -> Availability:
    """Whether estimator ``name`` (not ``auto``) can run here, and why not.

    Never raises for a registered name: a class that cannot even be imported is unavailable,
    with the import error as the reason.

    Raises:
        EstimatorError: unknown name.
    """
    if name not in ESTIMATORS:
        estimator_class(name)  # raises the "unknown estimator" error
    try:
        cls = estimator_class(name)
    except ImportError as e:
        return Availability(name, False, f"the {name} estimator cannot be loaded here: {e}", name)
    ok, reason = cls.availability(weights_dir=weights_dir, device=device)
    return Availability(name, bool(ok), "" if ok else str(reason),
                        getattr(cls, "label", "") or name)


def choose(name: str = AUTO, *, weights_dir=None, device: Optional[str] = None) -> Tuple[str, str]:
    """The estimator :func:`resolve` would create for ``name``, and why, without creating it.

    Returns:
        (name, reason): ``reason`` is one sentence; for ``auto`` it says why the others were
        passed over.

    Raises:
        EstimatorError: unknown name.
    """
    if name != AUTO:
        estimator_class(name)
        return name, f"{name} was asked for"
    passed_over = []
    for candidate in AUTO_ORDER:
        state = availability(candidate, weights_dir=weights_dir, device=device)
        if state.ok:
            why = f" ({'; '.join(passed_over)})" if passed_over else ""
            return candidate, f"auto chose {candidate}{why}"
        passed_over.append(f"not {candidate}: {state.reason}")
    raise EstimatorError(f"no estimator can run here: {'; '.join(passed_over)}")


def create(name: str, *, weights_dir=None, device: Optional[str] = None, **options):
    """Create the estimator registered under ``name`` (not ``auto``).

    Raises:
        EstimatorError: unknown name, or the estimator cannot run here.
        WeightsMissing: the estimator needs weights that are not on disk.
    """
    return estimator_class(name)(weights_dir=weights_dir, device=device, **options)


def resolve(name: str = AUTO, *, weights_dir=None, device: Optional[str] = None,
            **options) -> tuple:
    """Create an estimator by name, ``auto`` included, and say which and why.

    Args:
        name: ``auto`` or a name of :data:`ESTIMATORS`.
        weights_dir: where downloaded weights live (None: $SCAIL_WEIGHTS_DIR, else the
            project's ``pretrained_weights/``).
        device: "cpu", "cuda" or None (the estimator's best).
        options: passed to the estimator's constructor.

    Returns:
        (estimator, reason): the reason is one sentence, also logged at INFO. With ``auto``, an
        estimator whose models fail to load is passed over for the next one, and the reason
        says why.
    """
    chosen, reason = choose(name, weights_dir=weights_dir, device=device)
    if name == AUTO:  # an estimator that looked able to run may still fail to load its models
        for candidate in AUTO_ORDER[AUTO_ORDER.index(chosen):]:
            state = availability(candidate, weights_dir=weights_dir, device=device)
            if candidate != chosen and not state.ok:
                reason = f"{reason}; not {candidate}: {state.reason}"
                continue
            try:
                estimator = create(candidate, weights_dir=weights_dir, device=device, **options)
            except ScailError as e:
                reason = f"{reason}; not {candidate}: {e}"
                continue
            if candidate != chosen:
                reason = f"{reason}; auto chose {candidate}"
            return _chosen(estimator, reason)
        raise EstimatorError(f"no estimator could be loaded here: {reason}")
    return _chosen(create(chosen, weights_dir=weights_dir, device=device, **options), reason)


def _chosen(estimator, reason: str) -> tuple:
    log.info("estimator: %s", reason)
    estimator.chosen_because = reason
    return estimator, reason


def capabilities(*, weights_dir=None) -> dict:
    """The ``estimators`` entry of the server's hello capabilities.

    Returns:
        ``{"names": ["auto", <those that can run here>], "auto": name or None, "reason": str,
        "all": {name: {"available": bool, "reason": str, "label": str}}}``; clients offer
        ``names`` and show ``all[...]["reason"]`` for the others.
    """
    states = [availability(n, weights_dir=weights_dir) for n in ESTIMATORS]
    info = {"names": [AUTO] + [s.name for s in states if s.ok], "auto": None, "reason": "",
            "all": {s.name: {"available": s.ok, "reason": s.reason, "label": s.label}
                    for s in states}}
    try:
        info["auto"], info["reason"] = choose(AUTO, weights_dir=weights_dir)
    except EstimatorError as e:
        info["names"], info["reason"] = [], str(e)
    return info
