"""scail_protocol.outputs: an output never replaces an input, and is never half-written."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from scail_protocol.errors import OutputError
from scail_protocol.outputs import (atomic_file, atomic_folder, atomic_path, check_output_file,
                                    check_output_folder, describe_os_error, is_temporary,
                                    same_file, write_atomically)

posix_only = pytest.mark.skipif(os.name != "posix", reason="links and umask are POSIX here")


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "driving.mp4"
    path.write_bytes(b"the input")
    return path


def _names(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir())


# --- the guard ------------------------------------------------------------------------------------

@posix_only
@pytest.mark.parametrize("make_alias", [
    lambda v: v,
    lambda v: v.parent / "sub" / ".." / v.name,
    lambda v: Path(os.path.relpath(v)),
    lambda v: (v.parent / "link.mp4").symlink_to(v) or v.parent / "link.mp4",
    lambda v: os.link(v, v.parent / "hard.mp4") or v.parent / "hard.mp4",
    lambda v: (v.parent / "dirlink").symlink_to(v.parent) or v.parent / "dirlink" / v.name,
], ids=["same", "dotdot", "relative", "symlink", "hard-link", "folder-link"])
def test_an_output_that_is_the_input_by_any_path_is_refused(video, make_alias):
    (video.parent / "sub").mkdir()
    alias = make_alias(video)
    with pytest.raises(OutputError, match="is the input .*destroy the input") as info:
        check_output_file(alias, [video], what="-o")
    assert "\n" not in str(info.value)
    assert video.read_bytes() == b"the input"


def test_case_variant_is_the_input_only_where_the_file_system_ignores_case(video):
    upper = video.with_name(video.name.upper())
    if not upper.exists():  # case-sensitive file system: a different, new file
        assert check_output_file(upper, [video]) == upper
        return
    with pytest.raises(OutputError, match="is the input"):
        check_output_file(upper, [video])


def test_other_outputs_pass_and_missing_inputs_are_skipped(video, tmp_path):
    assert check_output_file(tmp_path / "poses.npz", [video, None]) == tmp_path / "poses.npz"
    (tmp_path / "old.npz").write_bytes(b"old output")
    assert check_output_file(tmp_path / "old.npz", [video]) == tmp_path / "old.npz"
    assert not same_file(tmp_path / "old.npz", video)


@pytest.mark.parametrize("target, message", [
    (".", "is a folder"), ("missing/x.npz", "does not exist"), ("afile/x.npz", "is a file")])
def test_unwritable_output_files_are_refused(tmp_path, target, message):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match=message):
        check_output_file(tmp_path / target)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_nobody_can_write_in_is_refused_up_front_and_left_clean(tmp_path):
    with pytest.raises(OutputError, match="cannot write /proc/poses.npz"):
        check_output_file("/proc/poses.npz")
    with pytest.raises(OutputError, match="cannot write /proc/frames"):
        check_output_folder("/proc/frames")
    check_output_file(tmp_path / "poses.npz")        # the probe leaves nothing behind
    assert list(tmp_path.iterdir()) == []


def test_a_replaced_folder_may_not_hold_an_input(video, tmp_path):
    with pytest.raises(OutputError, match="holds the input"):
        check_output_folder(tmp_path, [video], what="--frames")
    with pytest.raises(OutputError, match="is a file"):
        check_output_folder(video, [])
    assert check_output_folder(tmp_path / "frames", [video]) == tmp_path / "frames"


# --- atomic files ---------------------------------------------------------------------------------

@posix_only
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_umask_mode_not_the_temporary_one(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        path = write_atomically(tmp_path / "out.bin", lambda f: f.write(b"data"))
        with atomic_folder(tmp_path / "frames") as folder:
            (folder / "a.png").write_bytes(b"png")
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == mode
    assert (tmp_path / "frames").stat().st_mode & 0o777 == 0o777 & ~umask
    assert _names(tmp_path) == ["frames", "out.bin"]


@pytest.mark.parametrize("failure", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_old_target_and_no_temporary(tmp_path, failure):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(type(failure)):
        with atomic_file(target, "w") as f:
            f.write("half")
            assert _names(tmp_path) != ["out.txt"]  # the temporary exists meanwhile
            assert any(is_temporary(p) for p in tmp_path.iterdir())
            raise failure
    assert target.read_text() == "old" and _names(tmp_path) == ["out.txt"]


def test_atomic_path_hands_a_path_and_replaces_the_target(tmp_path):
    with atomic_path(tmp_path / "video.mp4") as temp:
        assert temp.parent == tmp_path and is_temporary(temp) and temp.exists()
        temp.write_bytes(b"encoded")
    assert (tmp_path / "video.mp4").read_bytes() == b"encoded"
    assert _names(tmp_path) == ["video.mp4"]


def test_a_folder_is_swapped_in_whole_or_not_at_all(tmp_path):
    target = tmp_path / "frames"
    target.mkdir()
    (target / "old.png").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as folder:
            (folder / "new.png").write_bytes(b"new")
            raise RuntimeError("boom")
    assert _names(target) == ["old.png"] and _names(tmp_path) == ["frames"]
    with atomic_folder(target) as folder:
        (folder / "new.png").write_bytes(b"new")
    assert _names(target) == ["new.png"] and _names(tmp_path) == ["frames"]


@posix_only
def test_a_folder_swapped_for_a_link_meanwhile_is_refused_and_nothing_lands_outside(tmp_path):
    inside, outside = tmp_path / "root" / "out", tmp_path / "outside"
    inside.mkdir(parents=True)
    outside.mkdir()

    def swap(f):
        f.write(b"secret")
        inside.rename(tmp_path / "root" / "moved")
        inside.symlink_to(outside)

    with pytest.raises(OutputError, match="was replaced"):
        write_atomically(inside / "video.mp4", swap)
    assert _names(outside) == [] and _names(tmp_path / "root" / "moved") == []


@posix_only
def test_before_rename_sees_the_real_landing_path_and_can_veto(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    seen = []
    write_atomically(tmp_path / "alias" / "a.bin", lambda f: f.write(b"1"),
                     before_rename=seen.append)
    assert seen == [Path(os.path.realpath(tmp_path / "real")) / "a.bin"]

    def veto(landing):
        raise OutputError(f"{landing} refused")

    with pytest.raises(OutputError, match="refused"):
        write_atomically(tmp_path / "real" / "b.bin", lambda f: f.write(b"2"), before_rename=veto)
    assert _names(tmp_path / "real") == ["a.bin"]


@posix_only
def test_a_full_disk_while_writing_is_one_line_naming_the_output(tmp_path):
    def fill(f):
        with open("/dev/full", "wb", buffering=0) as full:  # the kernel's always-full device
            full.write(b"x")

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with pytest.raises(OutputError) as info:
        write_atomically(tmp_path / "poses.npz", fill)
    assert str(info.value) == (f"cannot write {tmp_path / 'poses.npz'}: no space left on the "
                               f"device; free some space or write elsewhere")
    assert _names(tmp_path) == []


def test_describe_os_error_names_full_disks_and_falls_back_to_strerror():
    assert "no space left" in describe_os_error(OSError(errno.ENOSPC, "No space left on device"))
    assert describe_os_error(OSError(errno.EACCES, "Permission denied")) == "Permission denied"


# --- names at the file system's limit -------------------------------------------------------------

@pytest.mark.parametrize("name", ["a" * 251 + ".npz", "a" + "é" * 125 + ".npz"],
                         ids=["ascii-255", "two-byte-255"])
def test_names_up_to_255_bytes_are_written_though_temporaries_add_to_them(tmp_path, name):
    """The temporary and probe names cut the name inside them short, not the output's name."""
    target = tmp_path / name
    assert len(os.fsencode(name)) == 255
    assert check_output_file(target, suffix=".npz") == target
    write_atomically(target, lambda f: f.write(b"1"))
    assert _names(tmp_path) == [name] and target.read_bytes() == b"1"
    with atomic_folder(tmp_path / name[:-4]) as folder:  # a folder of that length too
        (folder / "frame_00000.png").write_bytes(b"png")
    assert check_output_folder(tmp_path / name[:-4]) == tmp_path / name[:-4]
    with atomic_folder(tmp_path / name[:-4]) as folder:  # replacing it makes one more temporary
        (folder / "frame_00000.png").write_bytes(b"new")
    assert _names(tmp_path / name[:-4]) == ["frame_00000.png"]
    assert sorted(_names(tmp_path)) == sorted([name, name[:-4]])


def test_a_name_longer_than_the_file_system_takes_is_refused_before_any_work(tmp_path):
    target = tmp_path / ("a" * 252 + ".npz")
    for check in (check_output_file, check_output_folder):
        with pytest.raises(OutputError) as info:
            check(target)
        assert str(info.value) == (f"cannot write {target}: its name is 256 bytes long, and file "
                                   f"names here take at most 255; choose a shorter name")
    assert _names(tmp_path) == []


# --- a folder output that is a symbolic link ------------------------------------------------------

@posix_only
def test_a_linked_folder_is_written_into_where_it_leads_and_the_link_stays(tmp_path):
    """A frames folder linked to a bigger disk: the new frames land there, the link is kept."""
    big = tmp_path / "bigdisk" / "frames"
    big.mkdir(parents=True)
    for i in range(4):
        (big / f"frame_{i:05d}.png").write_bytes(b"stale")
    link = tmp_path / "frames_link"
    link.symlink_to(Path("bigdisk") / "frames")  # relative, as `ln -s` makes them
    assert check_output_folder(link, only="frame_*.png") == link
    with atomic_folder(link) as folder:
        assert folder.parent == big.parent  # the temporary is on the link's disk
        (folder / "frame_00000.png").write_bytes(b"new")
    assert link.is_symlink() and os.readlink(link) == str(Path("bigdisk") / "frames")
    assert _names(big) == ["frame_00000.png"] and (big / "frame_00000.png").read_bytes() == b"new"
    assert _names(tmp_path) == ["bigdisk", "frames_link"]
    assert _names(tmp_path / "bigdisk") == ["frames"]


@posix_only
def test_a_linked_folder_is_checked_where_it_leads(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"precious")
    (tmp_path / "to_mine").symlink_to(mine)
    with pytest.raises(OutputError, match="already holds holiday.jpg"):
        check_output_folder(tmp_path / "to_mine", only="frame_*.png")
    (tmp_path / "a_file").write_bytes(b"x")
    (tmp_path / "to_file").symlink_to(tmp_path / "a_file")
    with pytest.raises(OutputError, match="to_file is a file, not a folder"):
        check_output_folder(tmp_path / "to_file")
    (tmp_path / "dangling").symlink_to(tmp_path / "new")  # where it leads is made
    with atomic_folder(tmp_path / "dangling") as folder:
        (folder / "frame_00000.png").write_bytes(b"new")
    assert (tmp_path / "dangling").is_symlink() and _names(tmp_path / "new") == ["frame_00000.png"]
    assert (mine / "holiday.jpg").read_bytes() == b"precious"


# --- a folder given for a file --------------------------------------------------------------------

def test_a_folder_given_for_a_file_gets_a_name_the_command_accepts(tmp_path):
    folder = tmp_path / "e"
    folder.mkdir()
    for suffix, example in [(".npz", "output.npz"), ((".bvh", ".fbx"), "output.bvh")]:
        with pytest.raises(OutputError) as info:
            check_output_file(folder, what="-o", suffix=suffix)
        assert str(info.value) == f"-o {folder} is a folder; give a file name such as " \
                                  f"{folder / example}"
        assert check_output_file(folder / example, what="-o", suffix=suffix) == folder / example
    with pytest.raises(OutputError) as info:  # no type known: no name that might be refused
        check_output_file(folder, what="-o")
    assert str(info.value) == f"-o {folder} is a folder; give the path of a file in it"
    (tmp_path / "take.fbx").mkdir()
    with pytest.raises(OutputError, match=r"such as .*take\.fbx/output\.fbx$"):
        check_output_file(tmp_path / "take.fbx", suffix=(".bvh", ".fbx"))


def test_a_name_of_another_type_is_refused_with_the_types_it_may_have(tmp_path):
    with pytest.raises(OutputError) as info:
        check_output_file(tmp_path / "take.abc", what="-o", suffix=(".bvh", ".fbx"))
    assert str(info.value) == (f"-o {tmp_path / 'take.abc'}: this writes .bvh or .fbx files; "
                               f"name it take.bvh or take.fbx")
    with pytest.raises(OutputError, match=r"this writes a \.npz file; name it take\.npz$"):
        check_output_file(tmp_path / "take.abc", suffix=".npz")
    assert check_output_file(tmp_path / "take.FBX", suffix=(".bvh", ".fbx"))
    # a name with the right type and one more suffix: the extra one goes, none is doubled
    with pytest.raises(OutputError, match=r"this writes a \.npz file; name it x\.npz$"):
        check_output_file(tmp_path / "x.npz.part", suffix=".npz")
    with pytest.raises(OutputError, match=r"files; name it x\.mp4\.fbx$"):
        check_output_file(tmp_path / "x.mp4.fbx.tmp", suffix=(".bvh", ".fbx"))


def test_output_error_words_a_full_disk_with_what_to_do():
    from scail_protocol.outputs import output_error

    error = output_error("e/c.fbx", OSError(errno.ENOSPC, "No space left on device"))
    assert str(error) == ("cannot write e/c.fbx: no space left on the device; free some space "
                          "or write elsewhere")
