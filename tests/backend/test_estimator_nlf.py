"""The nlf estimator (YOLOX + DWPose + NLF) on tiny stand-in models, and its numeric parts.

The stand-ins (``nlf_models``) have the real files' inputs, outputs and method, and outputs
computed from the pixels they receive, so a wrong letterbox, crop, normalisation, mask or channel
order moves or loses what they find. Numeric oracles are the reference's (§15) or hand-computed.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

import nlf_models as M  # noqa: E402  (tests/backend is on sys.path via rootdir conftest)

from scail_backend.estimators import registry  # noqa: E402
from scail_backend.estimators.nlf import detector, models, nlf3d, wholebody  # noqa: E402
from scail_backend.estimators.nlf.estimator import NLFEstimator  # noqa: E402
from scail_protocol.camera import intrinsics_from_fov  # noqa: E402
from scail_protocol.errors import Cancelled, EstimatorError, WeightsMissing  # noqa: E402


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """The three tiny models, fixed batch 1 like the real ONNX files."""
    return M.write_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def tiny_weights_batched(tmp_path_factory):
    """The same models with a free batch size (the estimator batches frames and crops)."""
    return M.write_weights(tmp_path_factory.mktemp("weights_b"), yolox_batch=None,
                           dwpose_batch=None)


def _estimate(weights, frames, **options):
    """Estimate with the tiny models; the reference's single-person selection unless told."""
    options.setdefault("people", "first")
    with NLFEstimator(weights_dir=weights, device="cpu", **options) as est:
        return est.estimate(iter(frames), size=M.SIZE, fps=16.0)


def _expected_134(person, feature):
    points, scores = M.expected_keypoints(person, feature)
    return wholebody.to_wholebody134(points[None].astype(np.float32), scores[None])


# --- numeric oracles (docs/pipeline.md §15 and hand-computed) ------------------------------------

def test_letterbox_of_a_512x896_frame_matches_the_reference():
    frame = np.zeros((512, 896, 3), np.uint8)
    frame[..., 0] = 200  # red in RGB
    frame[..., 2] = 10   # blue
    image, r = detector.letterbox(frame)
    assert r == pytest.approx(0.714285714)
    assert image.shape == (3, 640, 640) and image.dtype == np.float32
    assert (image[:, 365:, :] == 114).all()            # rows 365-639 are fill
    assert (image[:, :365, :640] != 114).all()          # 640 wide x 365 high of picture
    assert (image[0, :365] == 10).all() and (image[2, :365] == 200).all()  # BGR, raw 0-255


def test_letterbox_of_a_portrait_frame_fills_the_right_side():
    image, r = detector.letterbox(np.full((896, 512, 3), 7, np.uint8))
    assert r == pytest.approx(640 / 896)
    assert (image[:, :, 365:] == 114).all() and (image[:, :, :365] == 7).all()


def test_dwpose_box_expansion_and_warp_scale_match_the_reference():
    centre, scale = wholebody.centre_scale(np.array([[100, 50, 300, 450]]))
    np.testing.assert_allclose(centre, [[200, 250]])
    np.testing.assert_allclose(scale, [[375, 500]])
    m = wholebody.warp_matrix(centre[0], scale[0])
    assert m[0, 0] == pytest.approx(0.768) and m[1, 1] == pytest.approx(0.768)
    # the crop window x in [12.5, 387.5], y in [0, 500] maps onto the 288 x 384 input
    np.testing.assert_allclose(m @ [12.5, 0, 1], [0, 0], atol=1e-9)
    np.testing.assert_allclose(m @ [387.5, 500, 1], [288, 384], atol=1e-9)
    wide = wholebody.centre_scale(np.array([[0, 0, 400, 100]]))[1]
    np.testing.assert_allclose(wide, [[500, 500 / 0.75]])  # the short side is enlarged


def test_affine_crop_samples_the_frame_and_normalises_bgr_with_the_quirk():
    frame = np.zeros((512, 896, 3), np.uint8)
    frame[250, 200] = (30, 60, 90)            # RGB at the crop centre
    centre, scale = wholebody.centre_scale(np.array([[100, 50, 300, 450]]))
    scale[:] = 288.0                          # 1:1 so the pixel lands on an input pixel
    scale[0, 1] = 384.0
    out = np.empty((1, 3, 384, 288), np.float32)
    wholebody.crops(frame, centre, scale, out)
    # frame (200, 250) -> input (144, 192); channels B, G, R with the RGB constants
    expected = [(90 - 123.675) / 58.395, (60 - 116.28) / 57.12, (30 - 103.53) / 57.375]
    np.testing.assert_allclose(out[0, :, 192, 144], expected, rtol=1e-5)
    np.testing.assert_allclose(out[0, :, 0, 0], [-123.675 / 58.395, -116.28 / 57.12,
                                                 -103.53 / 57.375], rtol=1e-5)  # black border


def test_simcc_decode_by_hand():
    sx = np.zeros((1, 3, 576), np.float32)
    sy = np.zeros((1, 3, 768), np.float32)
    sx[0, 0, 101], sy[0, 0, 300] = 0.8, 0.6          # -> (50.5, 150), score 0.6
    sx[0, 1, 0], sy[0, 1, 767] = 0.2, 0.9            # -> (0, 383.5), score 0.2
    sx[0, 2] = -1.0                                  # score <= 0 -> location -1 / 2
    points, scores = wholebody.simcc_decode(sx, sy)
    np.testing.assert_allclose(points[0, :2], [[50.5, 150.0], [0.0, 383.5]])
    np.testing.assert_allclose(scores[0], [0.6, 0.2, -1.0])
    np.testing.assert_allclose(points[0, 2], [-0.5, -0.5])
    back = wholebody.to_frame(points[:, :1], np.array([[200.0, 250.0]]), np.array([[375., 500.]]))
    np.testing.assert_allclose(back[0, 0], [50.5 / 288 * 375 + 12.5, 150 / 384 * 500 + 0])


def test_nms_uses_the_plus_one_area_and_keeps_iou_equal_to_the_threshold():
    boxes = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [10, 10, 12, 12]], np.float64)
    scores = np.array([0.9, 0.8, 0.5])
    # +1 areas 9 and 9, intersection 2 x 3 = 6 -> IoU 0.5 (0.33 without the +1)
    assert detector.nms(boxes, scores, 0.45).tolist() == [0, 2]
    assert detector.nms(boxes, scores, 0.5).tolist() == [0, 1, 2]   # kept when <= threshold
    assert detector.nms(boxes, np.array([0.1, 0.8, 0.5]), 0.45).tolist() == [1, 2]


def test_class_aware_nms_keeps_classes_apart_and_applies_the_candidate_threshold():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float64)
    scores = np.array([[0.9, 0.0], [0.0, 0.7], [0.1, 0.0]])  # 0.1 is not > 0.1
    rows = detector.class_aware_nms(boxes, scores)
    assert rows[:, 4].tolist() == [0.9, 0.7] and rows[:, 5].tolist() == [0, 1]


def test_decode_and_person_filter_by_hand():
    grid, strides = detector.grid_and_strides()
    assert grid.shape == (8400, 2) and strides[6400, 0] == 16 and strides[8000, 0] == 32
    assert grid[6400 + 40 + 1].tolist() == [1, 1] and grid[81].tolist() == [1, 1]
    raw = np.zeros((8400, 85), np.float32)
    a = 6400 + 41                                   # stride 16, cell (1, 1)
    raw[a, :6] = [0.5, 0.25, math.log(2), math.log(4), 0.9, 1.0]
    raw[a + 1, :6] = [-0.4, 0.25, math.log(2), math.log(4), 0.6, 1.0]  # cell (2, 1): centre
    # x (−0.4 + 2) * 16 = 25.6, nearly the same box -> suppressed
    raw[5, :6] = [0.0, 0.0, 0.0, 0.0, 0.5, 0.5]      # score 0.25: a candidate, not a person
    raw[7, 4], raw[7, 5 + 3] = 0.9, 1.0              # another class only
    boxes, scores = detector.people(raw, 0.5, grid, strides)
    # centre ((0.5 + 1) * 16, (0.25 + 1) * 16) = (24, 20), size (32, 64), / r = 0.5
    np.testing.assert_allclose(boxes, [[16, -24, 80, 104]], atol=1e-4)
    np.testing.assert_allclose(scores, [0.9])


def test_nlf_crop_window_matches_the_reference():
    box = np.array([0.25, 0.125, 0.5, 0.875]) * [896, 512, 896, 512]
    assert nlf3d.crop_window(box, (512, 896)) == (201, 38, 471, 474)
    assert nlf3d.crop_window([0, 0, 896, 512], (512, 896)) == (0, 0, 896, 512)  # clipped


def test_masked_batch_keeps_only_the_window_and_reuses_slots():
    frame = np.arange(512 * 896 * 3, dtype=np.uint32).reshape(512, 896, 3).astype(np.uint8)
    frame[frame == 0] = 1
    batch = nlf3d.MaskedBatch(2, (512, 896))
    batch.add(frame, (10, 20, 30, 60))
    batch.add(frame, (100, 0, 896, 512))
    images = batch.images().numpy()
    assert (images[0, :, 20:60, 10:30] == frame[20:60, 10:30].transpose(2, 0, 1)).all()
    assert images[0].astype(bool).sum() == 3 * 40 * 20      # black outside
    batch.clear()
    batch.add(frame, (0, 0, 5, 5))                          # the old window is blacked out
    assert batch.images().numpy()[0].astype(bool).sum() == 3 * 25


def test_133_to_134_synthesises_the_neck_and_reorders_to_openpose():
    points = np.zeros((2, 133, 2), np.float32)
    points[:, :, 0] = np.arange(133)
    points[:, :, 1] = -np.arange(133)
    scores = np.full((2, 133), 0.9, np.float32)
    scores[1, 6] = 0.3                                    # not > 0.3: neck score 0
    p, s = wholebody.to_wholebody134(points, scores)
    assert p.shape == (2, 134, 2) and s.shape == (2, 134)
    np.testing.assert_allclose(p[0, 1], [5.5, -5.5])      # neck = mean of COCO 5, 6
    assert s[0, 1] == 1.0 and s[1, 1] == 0.0
    coco_of = [0, None, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    for op, coco in enumerate(coco_of):
        if coco is not None:
            assert p[0, op, 0] == coco
    assert p[0, 18:, 0].tolist() == list(range(17, 133))  # feet, face, hands keep their order


# --- the estimator on the tiny models ------------------------------------------------------------

def test_single_person_output_follows_the_reference(tiny_weights, caplog):
    frames = [M.scene(), M.scene(people=("A",)), np.zeros(M.SIZE + (3,), np.uint8)]
    with caplog.at_level(logging.INFO):
        seq = _estimate(tiny_weights, frames)
    assert seq.num_people == 1 and seq.num_frames == 3
    assert seq.meta["estimator"] == "nlf" and seq.meta["estimator_devices"] == {
        "yolox": "cpu", "dwpose": "cpu", "nlf": "cpu"}
    assert "YOLOX-L on cpu, DWPose-L on cpu, NLF-L on cpu" in caplog.text
    # box: person A (the higher score), within the letterbox's resampling
    for t in (0, 1):
        np.testing.assert_allclose(seq.bbox[0, t], M.A, atol=1.5)
    # 2D: feature-relative keypoints through the ×1.25 / 3:4 crop and the BGR quirk
    points, scores = _expected_134(M.A, M.A_FEATURE)
    np.testing.assert_allclose(seq.kp2d[0, 0], points[0], atol=1.0)
    np.testing.assert_allclose(seq.kp2d_score[0, 0], np.clip(scores[0], 0, 1), atol=0.03)
    # 3D: the masked window holds A and the bar beside it (margins of the image size), not B
    np.testing.assert_allclose(seq.joints3d[0, 0], M.expected_joints((200, 100, 335, 400)),
                               rtol=1e-5)
    assert seq.joints3d.dtype == np.float32
    # nobody: missing, never zeros
    assert np.isnan(seq.joints3d[0, 2]).all() and np.isnan(seq.kp2d[0, 2]).all()
    assert np.isnan(seq.bbox[0, 2]).all() and np.isnan(seq.kp2d_score[0, 2]).all()


def test_nobody_in_frame_0_is_a_missing_frame_not_a_crash(tiny_weights):
    seq = _estimate(tiny_weights, [np.zeros(M.SIZE + (3,), np.uint8), M.scene(people=("A",))])
    assert seq.present()[0].tolist() == [False, True]


def test_all_people_keeps_every_detection_in_score_order(tiny_weights):
    seq = _estimate(tiny_weights, [M.scene(), M.scene(people=("B",))], people="all")
    assert seq.num_people == 2
    np.testing.assert_allclose(seq.bbox[0, 0], M.A, atol=1.5)
    np.testing.assert_allclose(seq.bbox[1, 0], M.B, atol=1.5)
    np.testing.assert_allclose(seq.joints3d[1, 0], M.expected_joints(M.B), rtol=1e-5)
    points, _ = _expected_134(M.B, M.B_FEATURE)
    np.testing.assert_allclose(seq.kp2d[1, 0], points[0], atol=1.0)
    # frame 1: only B, in slot 0; slot 1 missing
    np.testing.assert_allclose(seq.bbox[0, 1], M.B, atol=1.5)
    assert np.isnan(seq.joints3d[1, 1]).all() and np.isnan(seq.bbox[1, 1]).all()


def test_the_stand_ins_punish_a_wrong_channel_order(tiny_weights):
    """Feeding BGR frames (the reference converts RGB -> BGR once) finds nobody."""
    seq = _estimate(tiny_weights, [M.scene()[..., ::-1].copy()])
    assert not seq.present().any()


def test_whole_image_fallback_feeds_dwpose_when_the_detector_finds_nobody(tiny_weights):
    frame = M.scene(people=("A",), feature_only=True)      # nothing the detector sees
    seq = _estimate(tiny_weights, [frame], fallback_2d=True)
    assert np.isnan(seq.bbox[0, 0]).all() and np.isnan(seq.joints3d[0, 0]).all()
    points, _ = _expected_134((0, 0, 896, 512), M.A_FEATURE)  # crop = the whole image
    np.testing.assert_allclose(seq.kp2d[0, 0], points[0], atol=2.0)
    assert not _estimate(tiny_weights, [frame]).present().any()  # default: a missing frame


def test_batched_models_give_the_same_result(tiny_weights, tiny_weights_batched):
    frames = [M.scene(), M.scene(people=("B",))] * 5
    one = _estimate(tiny_weights, frames, people="all")
    many = _estimate(tiny_weights_batched, frames, people="all")
    for name in ("joints3d", "kp2d", "kp2d_score", "bbox"):
        np.testing.assert_allclose(getattr(many, name), getattr(one, name), atol=1e-4)


def test_nlf_batches_are_halved_on_out_of_memory(tmp_path, caplog):
    weights = M.write_weights(tmp_path, nlf_max_batch=3)
    frames = [M.scene(people=("A",))] * 10
    with caplog.at_level(logging.WARNING):
        with NLFEstimator(weights_dir=weights, device="cpu", batch_size=8) as est:
            seq = est.estimate(iter(frames), size=M.SIZE, fps=16.0)
            assert est.batch_size == 2
    assert "out of memory" in caplog.text and "retrying with 4" in caplog.text
    assert np.isfinite(seq.joints3d).all()


def test_given_intrinsics_reach_nlf(tiny_weights):
    K = intrinsics_from_fov(*M.SIZE, fov_deg=40.0)
    with NLFEstimator(weights_dir=tiny_weights, device="cpu") as est:
        seq = est.estimate(iter([M.scene(people=("A",))]), size=M.SIZE, fps=16.0, K=K)
    np.testing.assert_allclose(seq.K, K)
    np.testing.assert_allclose(seq.joints3d[0, 0], M.expected_joints((200, 100, 335, 400), K=K),
                               rtol=1e-5)


def test_progress_reports_and_cancellation_stops_cleanly(tiny_weights):
    seen = []

    def progress(stage, done, total):
        seen.append(done)
        if done >= 8:
            raise Cancelled("stop")

    with NLFEstimator(weights_dir=tiny_weights, device="cpu") as est:
        with pytest.raises(Cancelled):
            est.estimate(iter([M.scene()] * 20), size=M.SIZE, fps=16.0, total=20,
                         progress=progress)
        seq = est.estimate(iter([M.scene()] * 3), size=M.SIZE, fps=16.0)  # still usable
    assert seen[0] == 0 and 8 in seen and seq.num_frames == 3


def test_a_frame_of_the_wrong_size_is_a_clear_error(tiny_weights):
    with NLFEstimator(weights_dir=tiny_weights, device="cpu") as est:
        with pytest.raises(EstimatorError, match=r"frame 0 is \(10, 10, 3\)"):
            est.estimate(iter([np.zeros((10, 10, 3), np.uint8)]), size=M.SIZE, fps=16.0)


def test_empty_clip_gives_an_empty_sequence(tiny_weights):
    seq = _estimate(tiny_weights, [])
    assert seq.num_frames == 0 and seq.num_people == 1


# --- weights, devices, registry ------------------------------------------------------------------

def test_not_published_weights_are_used_with_one_warning_line(tiny_weights, caplog):
    with caplog.at_level(logging.WARNING):
        NLFEstimator(weights_dir=tiny_weights, device="cpu").close()
    lines = [r.getMessage() for r in caplog.records if "not the published" in r.getMessage()]
    assert len(lines) == 1 and "yolox_l.onnx" in lines[0] and "\n" not in lines[0]
    assert "weights verify" in lines[0]


def test_weights_verify_reports_the_variant(tiny_weights, capsys):
    from scail_backend.cli import main

    assert main(["-q", "weights", "verify", "--weights-dir", str(tiny_weights)]) == 2
    out = capsys.readouterr().out
    assert "size-mismatch" in out and "DWPose/yolox_l.onnx" in out and "not the published" in out
    assert "models-ok" in out


def test_weights_verify_names_a_wrong_model(tiny_weights, tmp_path, capsys):
    from scail_backend.cli import main

    folder, target = _broken_copy(tiny_weights, tmp_path, "nlf",
                                  lambda p: M.write_scripted_without_method(p))
    assert main(["-q", "weights", "verify", "--weights-dir", str(folder)]) == 2
    out = capsys.readouterr().out
    assert "wrong-model" in out and str(target) in out and "detect_smpl_batched" in out


def test_auto_picks_nlf_when_the_files_load_and_says_so(tiny_weights):
    name, reason = registry.choose("auto", weights_dir=tiny_weights)
    assert name == "nlf" and "nlf" in reason
    assert registry.availability("nlf", weights_dir=tiny_weights).ok
    caps = registry.capabilities(weights_dir=tiny_weights)
    assert "nlf" in caps["names"] and caps["auto"] == "nlf"


def _broken_copy(tiny_weights, tmp_path, name, content):
    import shutil

    folder = tmp_path / "w"
    shutil.copytree(tiny_weights, folder)
    target = folder / {"yolox": "DWPose/yolox_l.onnx", "dwpose": "DWPose/dw-ll_ucoco_384.onnx",
                       "nlf": "nlf_l_multi_0.3.2.torchscript"}[name]
    if callable(content):
        content(target)
    else:
        target.write_bytes(content)
    return folder, target


@pytest.mark.parametrize("name, make, message", [
    ("yolox", lambda p: p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2]),
     "cannot be read as ONNX"),
    ("yolox", lambda p: M.write_yolox(p, input_name="data"), "no input named 'images'"),
    ("yolox", lambda p: M.write_yolox(p, output_rank3=False), "rank 2, expected 3"),
    ("dwpose", lambda p: M.write_yolox(p), "no input named 'input'"),
    ("dwpose", lambda p: M.write_dwpose(p, input_hw=(256, 192)), "size 256 on axis 2"),
    ("nlf", lambda p: M.write_scripted_without_method(p), "no detect_smpl_batched"),
    ("nlf", lambda p: p.write_bytes(p.read_bytes()[:1000]), "not a readable TorchScript"),
])
def test_wrong_weight_files_name_the_file_and_the_fix(tiny_weights, tmp_path, name, make,
                                                      message):
    folder, target = _broken_copy(tiny_weights, tmp_path, name, make)
    with pytest.raises(WeightsMissing) as info:
        NLFEstimator(weights_dir=folder, device="cpu")
    text = str(info.value)
    assert message in text and str(target) in text and "download" in text and "\n" not in text
    ok, reason = NLFEstimator.availability(weights_dir=folder)
    assert not ok and message in reason
    chosen, why = registry.choose("auto", weights_dir=folder)
    assert chosen == "mediapipe" and target.name in why


def test_torchscript_without_joints3d_nonparam_is_a_clear_error(tiny_weights, tmp_path):
    folder, target = _broken_copy(tiny_weights, tmp_path, "nlf",
                                  lambda p: M.write_nlf(p, joints_key="poses3d"))
    with NLFEstimator(weights_dir=folder, device="cpu") as est:
        with pytest.raises(EstimatorError, match="no 'joints3d_nonparam'.*nlf_l_multi"):
            est.estimate(iter([M.scene()]), size=M.SIZE, fps=16.0)


def test_missing_weights_say_where_and_how(tmp_path):
    with pytest.raises(WeightsMissing, match=f"not found at {tmp_path}.*weights download"):
        NLFEstimator(weights_dir=tmp_path, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_device_cuda_without_cuda_fails_up_front(tiny_weights):
    with pytest.raises(EstimatorError, match="--device cuda: no CUDA for .*--device cpu"):
        NLFEstimator(weights_dir=tiny_weights, device="cuda")
    with pytest.raises(EstimatorError, match="unknown device 'tpu'"):
        NLFEstimator(weights_dir=tiny_weights, device="tpu")


def test_cli_extract_with_nlf_end_to_end(tiny_weights, tmp_path, capsys):
    from scail_backend.cli import main
    from scail_protocol.sequence import PoseSequence

    # (tracking drops people seen for less than ~0.3 s, hence 16 frames with someone)
    frames = [M.scene(), M.scene(people=("A",))] * 8 + [np.zeros(M.SIZE + (3,), np.uint8)]
    clip = _lossless_clip(tmp_path / "clip.mp4", frames)
    out = tmp_path / "poses.npz"
    code = main(["-q", "extract", str(clip), "-o", str(out), "--estimator", "nlf",
                 "--weights-dir", str(tiny_weights), "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    seq = PoseSequence.load(out)
    # every detected person is kept (A in every frame, B in every other one), tracked apart
    assert seq.meta["estimator"] == "nlf" and seq.num_frames == 17 and seq.num_people == 2
    np.testing.assert_allclose(seq.bbox[0, :16], [M.A] * 16, atol=1.5)
    np.testing.assert_allclose(seq.joints3d[0, 1], M.expected_joints((200, 100, 335, 400)),
                               rtol=1e-4)
    assert np.isnan(seq.joints3d[0, 16]).all()


def test_cli_extract_with_broken_weights_writes_nothing(tiny_weights, tmp_path, capsys):
    from PIL import Image

    from scail_backend.cli import main

    folder, target = _broken_copy(tiny_weights, tmp_path, "yolox", b"not onnx at all")
    Image.fromarray(M.scene()).save(tmp_path / "frame.png")
    out = tmp_path / "poses.npz"
    code = main(["-q", "extract", str(tmp_path / "frame.png"), "-o", str(out),
                 "--estimator", "nlf", "--weights-dir", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and str(target) in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".poses*"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_smoke(tiny_weights):
    frames = [M.scene(), M.scene(people=("B",))]
    with NLFEstimator(weights_dir=tiny_weights, device="auto", people="all") as est:
        assert est.devices["nlf"].startswith("cuda")
        seq = est.estimate(iter(frames), size=M.SIZE, fps=16.0)
    cpu = _estimate(tiny_weights, frames, people="all")
    assert seq.num_people == 2
    np.testing.assert_allclose(seq.joints3d, cpu.joints3d, rtol=1e-4)
    np.testing.assert_allclose(seq.kp2d, cpu.kp2d, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_run_on_cuda_gives_the_cpu_result(tiny_weights, tmp_path):
    """``run`` with NLF and the renderer on CUDA: the CPU run's poses and pictures (a child
    process each, since taichi keeps one arch per process)."""
    import subprocess
    import sys

    from scail_protocol.sequence import PoseSequence
    from video_helpers import decoded_frames

    folders = {}
    for where in ("cuda", "cpu"):
        folder = folders[where] = tmp_path / where
        folder.mkdir()
        _lossless_clip(folder / "driving.mp4", [M.scene()] * 8)
        done = subprocess.run(
            [sys.executable, "-m", "scail_backend.cli", "-q", "run", str(folder),
             "--estimator", "nlf", "--weights-dir", str(tiny_weights),
             "--device", "auto" if where == "cuda" else "cpu", "--arch", where],
            capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    gpu, cpu = (PoseSequence.load(folders[w] / "poses.npz") for w in ("cuda", "cpu"))
    assert gpu.num_people == cpu.num_people == 2
    np.testing.assert_allclose(gpu.joints3d, cpu.joints3d, rtol=1e-4)
    pictures = [decoded_frames(folders[w] / "rendered.mp4").astype(np.int16)
                for w in ("cuda", "cpu")]
    assert pictures[0].shape == pictures[1].shape and pictures[0].any()
    assert np.abs(pictures[0] - pictures[1]).mean() <= 1.0


def test_server_hello_lists_nlf_and_where_its_models_run(tiny_weights, tmp_path, monkeypatch):
    from scail_backend import weights
    from scail_backend.server import capabilities

    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tmp_path))          # no weights there
    caps = capabilities.detect()
    assert "nlf" not in caps["estimators"]["names"] and caps["device"]["models"] == {}
    assert str(tmp_path) in caps["estimators"]["all"]["nlf"]["reason"]
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tiny_weights))
    caps = capabilities.detect()
    assert "nlf" in caps["estimators"]["names"] and caps["estimators"]["auto"] == "nlf"
    placed = caps["device"]["models"]["nlf"]
    assert set(placed) == {"yolox", "dwpose", "nlf"}
    if not torch.cuda.is_available():
        assert placed == {"yolox": "cpu", "dwpose": "cpu", "nlf": "cpu"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_auto_with_device_cuda_without_cuda_says_why_nothing_can_honour_it(tiny_weights):
    # --device cuda never falls back to the CPU: nlf lacks CUDA here, mediapipe is CPU only
    with pytest.raises(EstimatorError) as info:
        registry.resolve("auto", weights_dir=tiny_weights, device="cuda")
    message = str(info.value)
    assert "not nlf: --device cuda: no CUDA" in message
    assert "not mediapipe: mediapipe runs on the CPU only" in message


def _lossless_clip(path, frames):
    """An H.264 clip that decodes to exactly ``frames`` (libx264rgb, crf 0)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=16)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], \
            "rgb24"
        stream.options = {"crf": "0", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_server_extract_with_nlf(tiny_weights, tmp_path, monkeypatch):
    from scail_backend import weights
    from scail_backend.server import ServerConfig
    from scail_protocol import conversation
    from scail_protocol import messages as msg
    from scail_protocol.client import BackendClient
    from server_helpers import KEY, ServerThread

    monkeypatch.setenv(weights.WEIGHTS_ENV, str(tiny_weights))
    clip = _lossless_clip(tmp_path / "clip.mp4", [M.scene(people=("A",))] * 16)
    running = ServerThread(ServerConfig(key=KEY, bind="tcp://127.0.0.1:*", roots=(tmp_path,),
                                        work_dir=tmp_path / "work"))
    try:
        with BackendClient(running.address, KEY, timeout_s=60) as client:
            caps = client.hello()["capabilities"]
            assert "nlf" in caps["estimators"]["names"] and "nlf" in caps["device"]["models"]
            body = dict(conversation.extract_options(estimator="nlf"),
                        video={"path": str(clip)})
            result = client.wait(client.submit(msg.EXTRACT, body))
    finally:
        running.close()
    seq = result.poses
    assert seq.meta["estimator"] == "nlf" and seq.num_frames == 16
    np.testing.assert_allclose(seq.bbox[0], [M.A] * 16, atol=1.5)
    np.testing.assert_allclose(seq.joints3d[0, 0], M.expected_joints((200, 100, 335, 400)),
                               rtol=1e-4)


def test_a_file_of_the_published_size_is_checked_by_sha256(tiny_weights, monkeypatch):
    import dataclasses

    from scail_backend import weights

    path = tiny_weights / "DWPose" / "yolox_l.onnx"
    published = weights.load_manifest()

    def manifest_with(sha256):
        return [dataclasses.replace(f, size_bytes=path.stat().st_size, sha256=sha256)
                if f.name == "yolox_l.onnx" else f for f in published]

    monkeypatch.setattr(weights, "load_manifest", lambda path=None: manifest_with("0" * 64))
    notes = models.warn_if_not_published({"yolox_l.onnx": path})
    assert len(notes) == 1 and "sha256" in notes[0] and str(path) in notes[0]
    digest = weights.sha256_of(path)
    monkeypatch.setattr(weights, "load_manifest", lambda path=None: manifest_with(digest))
    assert models.warn_if_not_published({"yolox_l.onnx": path}) == []


def test_every_detected_person_is_kept_by_default(tiny_weights):
    """Several people (issue 11): the pipeline's tracking gets everyone nlf detects."""
    with NLFEstimator(weights_dir=tiny_weights, device="cpu") as est:
        seq = est.estimate(iter([M.scene(), M.scene(people=("B",))]), size=M.SIZE, fps=16.0)
    assert seq.num_people == 2
