"""Several people and cleanup options from the add-on: the options reach a real backend, and a
take of several people becomes one armature per identity, each on its own NLA track."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from addon_helpers import armature_objects, set_backend_prefs, synthetic_clip
from motion import make_sequence

bpy = pytest.importorskip("bpy")

CLIP_FRAMES = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A short synthetic video of one waving person (the backend's synth, in a subprocess)."""
    return synthetic_clip(tmp_path_factory.mktemp("clip"), motion="wave",
                          num_frames=CLIP_FRAMES, size=(256, 192))


def test_cleanup_field_sends_only_what_differs_from_the_defaults(addon):
    from scail_protocol.conversation import cleanup_field, extract_options

    assert cleanup_field() == {}
    assert "cleanup" not in extract_options(cleanup=cleanup_field())
    field = cleanup_field(max_people=2, fill_gaps=6, take_fit=True, foot_lock=True)
    assert field == {"max_people": 2, "fill_gaps": 6, "take_fit": True, "foot_lock": True}
    assert extract_options(cleanup=field)["cleanup"] == field


def test_cleanup_on_a_backend_without_it_is_refused_clearly(addon):
    hello = {"capabilities": {"extract": True, "estimators": {"names": ["auto", "mediapipe"]}}}
    with pytest.raises(Exception, match="cannot keep fewer people, fill gaps or lock feet"):
        addon.jobs.check_capabilities(hello, "tcp://old:5555", {"estimator": "auto",
                                                                  "cleanup": {"foot_lock": True}})


@pytest.mark.slow
def test_import_video_passes_people_and_cleanup_options_to_the_backend(addon, scene, server,
                                                                       clip):
    set_backend_prefs(server.address, server.key_file, timeout_s=3.0)
    video = server.root / "driving.mp4"
    shutil.copy(clip, video)
    result = bpy.ops.scail.import_video(filepath=str(video), estimator="MEDIAPIPE",
                                        max_people=1, fill_gaps=4, use_take_fit=True,
                                        use_foot_lock=True)
    assert result == {"FINISHED"}
    (obj,) = armature_objects()
    meta = addon.export.export_sequence([obj], scene=scene).meta
    assert meta["tracking"]["max_people"] == 1
    assert meta["cleanup"]["fill_gaps"]["max_frames"] == 4
    assert "planted_frames" in meta["cleanup"]["foot_lock"]
    assert "take_fit" in meta


def test_three_identities_become_three_named_armatures_on_their_own_tracks(addon, scene):
    seq = make_sequence(10, num_people=3)
    seq = seq.replace(track_id=np.array([0, 1, 2]))
    result = addon.armature.import_sequence(seq, scene.collection, scene=scene, name="Duo")
    names = [obj.name for obj in result.armatures]
    assert names == ["Duo 0", "Duo 1", "Duo 2"]
    tracks = [[t.name for t in obj.animation_data.nla_tracks] for obj in result.armatures]
    assert tracks == [["Duo 0 take"], ["Duo 1 take"], ["Duo 2 take"]]
    actions = {obj.animation_data.nla_tracks[0].strips[0].action for obj in result.armatures}
    assert len(actions) == 3
    out = addon.export.export_sequence(result.armatures, scene=scene)
    assert out.track_id.tolist() == [0, 1, 2]
    for p in range(3):  # each armature exports its own person, not a neighbour's
        np.testing.assert_allclose(out.joints3d[p], seq.joints3d[p], atol=0.5)
