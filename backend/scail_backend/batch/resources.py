"""What each part of a batch asks Ray for.

* **Estimation** runs in actors (models loaded once per worker): one CPU each, plus one GPU when
  the estimator uses one (``nlf``: the batch's own, or any clip's from its manifest row) and the
  cluster has GPUs, shared when there are fewer GPUs
  than workers (``--gpus-per-worker`` overrides the GPU count; 0.5 puts two workers on one
  GPU). An actor given no GPU runs its estimator on the CPU. Actors hold their CPU for the whole
  batch, so a cluster gets at most (its CPUs - 1) of them: a CPU stays for the render tasks.
* **Rendering and encoding** are plain Ray tasks of one CPU each. ``--arch auto`` renders on the
  CPU there (a task holds no GPU); ``--arch cuda`` uses whatever GPU the task's node shows.

A local Ray (no ``--address``) gets two CPUs per worker: its estimation actor and one render
task beside it, so that a worker estimates its next clip while the last one renders.
"""

from __future__ import annotations

from typing import Optional

from scail_protocol.errors import ScailError

GPU_ESTIMATORS = ("nlf",)   # estimators that run on CUDA when there is a GPU
ESTIMATION_CPUS = 1
RENDER_CPUS = 1
LOCAL_CPUS_PER_WORKER = ESTIMATION_CPUS + RENDER_CPUS


def estimation_resources(estimator: str, cluster_gpus: float, *, workers: int = 1,
                         gpus_per_worker: Optional[float] = None,
                         device: Optional[str] = None) -> dict:
    """Ray resources of one estimation actor.

    Args:
        estimator: the estimator's name as chosen ("nlf", "mediapipe"; not "auto").
        cluster_gpus: GPUs in the cluster (``ray.cluster_resources()["GPU"]``, 0 if absent).
        workers: estimation actors in the batch; they share the GPUs when there are fewer
            GPUs than workers (2 workers on 1 GPU: 0.5 each).
        gpus_per_worker: an explicit GPU count (``--gpus-per-worker``); None = the above.
        device: the estimator device asked for; "cpu" asks for no GPU.

    Returns:
        ``{"num_cpus": 1, "num_gpus": G}`` for ``ActorClass.options``; G = 0 for an estimator
        that does not use a GPU, or when the cluster has none.

    Raises:
        ScailError: a negative ``gpus_per_worker``, or more than the cluster has (the actors
            could never start).
    """
    if gpus_per_worker is not None:
        gpus = float(gpus_per_worker)
        if gpus < 0:
            raise ScailError(f"--gpus-per-worker must be 0 or more, got {gpus:g}")
        if gpus > cluster_gpus:
            raise ScailError(f"--gpus-per-worker {gpus:g} asks for more GPUs than the "
                             f"cluster has ({cluster_gpus:g})")
    elif estimator in GPU_ESTIMATORS and cluster_gpus > 0 and device != "cpu":
        gpus = min(1.0, cluster_gpus / max(1, workers))
    else:
        gpus = 0
    return {"num_cpus": ESTIMATION_CPUS, "num_gpus": gpus}


def fit_workers(workers: int, cluster_cpus: float) -> int:
    """How many of ``workers`` estimation actors a cluster of ``cluster_cpus`` CPUs takes while
    leaving CPUs for the render tasks (an actor holds its CPU for the whole batch).

    Raises:
        ScailError: the cluster has too few CPUs for one actor and one render task.
    """
    room = int(cluster_cpus) - RENDER_CPUS
    if room < ESTIMATION_CPUS:
        raise ScailError(f"a batch needs at least {ESTIMATION_CPUS + RENDER_CPUS} CPUs in the "
                         f"Ray cluster (one estimation worker and one render task); it has "
                         f"{cluster_cpus:g}")
    return max(1, min(workers, room // ESTIMATION_CPUS))


def render_resources() -> dict:
    """Ray resources of one render-and-encode task: one CPU."""
    return {"num_cpus": RENDER_CPUS, "num_gpus": 0}


def render_arch(arch: str) -> str:
    """The renderer arch a render task uses: "auto" becomes "cpu" (the task holds no GPU)."""
    return "cpu" if arch in (None, "auto") else arch


def estimation_device(device: Optional[str], resources: dict) -> Optional[str]:
    """The estimator device of an actor with ``resources``: "cpu" when it was given no GPU
    and the user did not ask for one (Ray leaves the node's GPUs visible to it all the same)."""
    if resources["num_gpus"] == 0 and device in (None, "auto"):
        return "cpu"
    return device


def local_cpus(workers: int) -> int:
    """CPUs of a local Ray for ``workers`` workers (an actor and a render task each)."""
    return LOCAL_CPUS_PER_WORKER * max(1, workers)


def estimator_name(defaults: dict) -> str:
    """The estimator the batch's clips use by default ("auto" resolved here, on the driver:
    nlf when its weights are present)."""
    from ..estimators.registry import choose

    name = defaults.get("estimator") or "auto"
    try:
        chosen, _ = choose(name, weights_dir=defaults.get("weights_dir"))
    except ScailError:
        return name
    return chosen


def batch_estimator(defaults: dict, clip_estimators=()) -> str:
    """The estimator that sizes the batch's estimation actors: a GPU one (``nlf``) when the
    batch's default or any clip's own (a manifest row's ``estimator``) is one, so that such a
    clip gets its GPU even in a batch that defaults to ``mediapipe``; else the default."""
    names = [estimator_name(defaults)]
    names += [estimator_name(dict(defaults, estimator=name)) for name in clip_estimators if name]
    return next((name for name in names if name in GPU_ESTIMATORS), names[0])
