"""The joint and colour tables against docs/pipeline.md §0.1, §5, §6.1, §7, §15."""

import numpy as np
import pytest

from scail_protocol import joints as J
from scail_protocol import palette as C


def test_smpl24_parents_form_a_tree_rooted_at_pelvis():
    assert len(J.SMPL24_NAMES) == len(J.SMPL24_PARENTS) == 24
    assert J.SMPL24_PARENTS[0] == J.MISSING
    for child, parent in enumerate(J.SMPL24_PARENTS[1:], start=1):
        assert 0 <= parent < child  # parents come first: a single forward pass does FK


@pytest.mark.parametrize("name, index", [("pelvis", 0), ("neck", 12), ("head", 15),
                                         ("left_shoulder", 16), ("right_wrist", 21),
                                         ("left_foot", 10), ("right_hand", 23)])
def test_smpl24_indices_match_reference(name, index):
    assert J.SMPL24[name] == index


def test_openpose18_from_smpl24_matches_reference_section5():
    expected = {0: 15, 1: 12, 2: 17, 3: 19, 4: 21, 5: 16, 6: 18, 7: 20, 8: 2, 9: 5, 10: 8,
                11: 1, 12: 4, 13: 7}
    for op, smpl in expected.items():
        assert J.OPENPOSE18_FROM_SMPL24[op] == smpl
    assert J.OPENPOSE18_FROM_SMPL24[14:] == (J.MISSING,) * 4


def test_smpl24_to_openpose18_copies_joints_and_leaves_eyes_missing(rng):
    smpl = rng.normal(size=(2, 5, 24, 3)).astype(np.float32)
    op = J.smpl24_to_openpose18(smpl)
    assert op.shape == (2, 5, 18, 3) and op.dtype == np.float32
    np.testing.assert_array_equal(op[..., 0, :], smpl[..., 15, :])
    np.testing.assert_array_equal(op[..., 8, :], smpl[..., 2, :])
    assert np.isnan(op[..., 14:, :]).all()


def test_wholebody_layout_covers_134_points_in_order():
    spans = [J.BODY, J.FEET, J.FACE, J.LEFT_HAND, J.RIGHT_HAND]
    assert [s.stop - s.start for s in spans] == [18, 6, 68, 21, 21]
    assert all(a.stop == b.start for a, b in zip(spans, spans[1:]))
    assert spans[-1].stop == J.NUM_WHOLEBODY == 134


def test_limb_table_and_draw_order():
    assert len(J.OPENPOSE18_LIMBS) == len(C.LIMB_COLORS_RGB8) == 17
    assert sorted(J.LIMB_DRAW_ORDER) == list(range(17))
    assert J.LIMB_DRAW_ORDER[:4] == (0, 2, 3, 1)
    assert J.OPENPOSE18_LIMBS[12] == (1, 0) and C.LIMB_COLORS_RGB8[12] == (150, 150, 150)


def test_shader_colours_follow_c_over_300_plus_015():
    rgba = C.shader_rgba(C.LIMB_COLORS_RGB8)
    np.testing.assert_allclose(rgba[0], (1.0, 0.15, 0.15, 0.8), atol=1e-6)
    np.testing.assert_allclose(rgba[2], (1.0, 0.43333, 0.15, 0.8), atol=1e-5)
    np.testing.assert_allclose(rgba[12], (0.65, 0.65, 0.65, 0.8), atol=1e-6)
    assert rgba.dtype == np.float32


def test_hand_edge_colours_match_reference_within_one_level():
    expected = [(255, 0, 0), (255, 77, 0), (255, 153, 0), (255, 229, 0), (204, 255, 0),
                (128, 255, 0), (51, 255, 0), (0, 255, 25), (0, 255, 102), (0, 255, 179),
                (0, 255, 255), (0, 178, 255), (0, 102, 255), (0, 25, 255), (51, 0, 255),
                (128, 0, 255), (204, 0, 255), (255, 0, 230), (255, 0, 153), (255, 0, 77)]
    got = C.hand_edge_colors_rgb8(20).astype(int)
    # exact .5 cases depend on float rounding of HSV->RGB (docs/pipeline.md §15): compare with ±1
    np.testing.assert_allclose(got, expected, atol=1)


def test_cheek_colours_dim_to_reference_values():
    dimmed = (np.asarray(C.CHEEK_LIMB_COLORS_RGB8) * C.CHEEK_DIM).astype(int)
    assert dimmed.tolist() == [[51, 0, 153], [102, 0, 153], [153, 0, 153], [153, 0, 102]]


def test_person_palettes():
    assert C.limb_colors_rgb8(0, 1) is C.LIMB_COLORS_RGB8
    assert C.limb_colors_rgb8(0, 2) is C.PASTEL_LIMB_COLORS_RGB8
    assert C.limb_colors_rgb8(1, 2) is C.SATURATED_LIMB_COLORS_RGB8
