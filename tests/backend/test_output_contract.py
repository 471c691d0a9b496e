"""The backend's outputs follow scail_protocol.contract (rate, hit alpha, overlay compositing,
default working size): each check reads the rule from its one home, so a copy that drifts fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from scail_protocol import contract, overlay
from scail_protocol.sequence import PoseSequence


def test_landscape_and_portrait_working_sizes_default_to_the_contract():
    from scail_backend.video.framing import target_size

    height, width = contract.DEFAULT_RESOLUTION
    assert target_size((720, 1280)) == (height, width)
    assert target_size((1280, 720)) == (width, height)


def test_stills_and_synthetic_clips_take_the_contract_rate(tmp_path):
    from scail_backend.video.reader import open_video
    from scail_backend.video.writer import Mp4Writer

    av = pytest.importorskip("av")
    image = tmp_path / "still.png"
    from PIL import Image

    Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(image)
    assert open_video(image).fps == contract.OUTPUT_FPS
    out = tmp_path / "out.mp4"
    with Mp4Writer(out, (64, 96)) as video:
        video.write(np.zeros((64, 96, 3), np.uint8))
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == contract.OUTPUT_FPS


def test_rendered_frames_have_the_contract_alpha_and_overlay():
    from scail_backend.render.pipeline import iter_rendered_frames
    from scail_backend.render.samples import walking_sequence

    seq = walking_sequence(1, (128, 224))
    bare = next(iter_rendered_frames(seq, arch="cpu", overlay=False))
    drawn = next(iter_rendered_frames(seq, arch="cpu", overlay=True))
    assert set(np.unique(bare[..., 3])) == {0, contract.HIT_ALPHA}
    canvas = overlay.draw_overlay(seq.kp2d[:, 0], seq.kp2d_score[:, 0], seq.size)
    assert canvas.any()
    np.testing.assert_array_equal(drawn, overlay.composite_per_channel(bare, canvas))
