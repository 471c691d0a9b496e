"""The production renderer on CUDA gives the oracle's picture (skipped where taichi finds no GPU).

Taichi runs one arch per process, and the other renderer tests hold CPU renderers, so the CUDA
renders are made in a child process and compared here against the CPU oracle, with the same
thresholds as ``test_render_capsules``.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import render_scenes as S

HERE = Path(__file__).resolve().parent
MIN_IOU = 0.995
MAX_MEAN_DIFF = 2.0

CHILD = """
import sys, numpy as np
sys.path.insert(0, {here!r})
import render_scenes as S
from scail_backend.render import taichi_runtime as rt
if not rt.cuda_available():
    print("NO_CUDA"); sys.exit(0)
from scail_backend.render.capsule_renderer import CapsuleRenderer
from scail_protocol.capsules import DepthRange, drawn_endpoint_z_range, frame_capsules
renderer = CapsuleRenderer(S.SIZE, arch="cuda", batch_frames=4)
assert rt.current_arch() == "cuda", rt.current_arch()
out = {{}}
for name in sorted(S.SCENES):
    joints = S.SCENES[name]()
    z = drawn_endpoint_z_range(joints)
    depth = DepthRange.from_z_range(*(z or (0.0, 0.0)))
    out[name] = renderer.render([frame_capsules(joints)], depth, S.K)[0]
np.savez({path!r}, **out)
print("RENDERED", len(out))
"""


@pytest.fixture(scope="module")
def cuda_pictures(tmp_path_factory):
    path = tmp_path_factory.mktemp("cuda") / "pictures.npz"
    script = CHILD.format(here=str(HERE), path=str(path))
    env = dict(os.environ, TI_SKIP_VERSION_CHECK="ON")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, env=env)
    if "NO_CUDA" in done.stdout:
        pytest.skip("taichi finds no CUDA GPU here")
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(np.load(path))


@pytest.fixture(scope="module")
def oracle():
    from scail_backend.render.oracle import OracleRenderer

    return OracleRenderer(S.SIZE, arch="cpu")


@pytest.mark.parametrize("name", sorted(S.SCENES))
def test_cuda_renderer_gives_the_oracle_picture(cuda_pictures, oracle, name):
    from scail_protocol.capsules import DepthRange, drawn_endpoint_z_range, frame_capsules

    joints = S.SCENES[name]()
    z = drawn_endpoint_z_range(joints)
    reference = oracle.render(frame_capsules(joints), DepthRange.from_z_range(*(z or (0.0, 0.0))),
                              S.K)
    ours = cuda_pictures[name]
    assert S.foreground_iou(reference, ours) >= MIN_IOU
    assert S.mean_rgb_diff(reference, ours) <= MAX_MEAN_DIFF
    assert set(np.unique(ours[..., 3])) <= {0, 204}
