"""The CLI never destroys an input, checks its options before any work, stops cleanly on
SIGTERM/SIGHUP as on Ctrl-C, says what it found under ``-q`` and prints one line per error."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scail_backend.cli import EXIT_ERROR, EXIT_NOBODY, main
from scail_protocol.sequence import PoseSequence

from mount_helpers import can_mount_tmpfs
from video_helpers import write_clip

SIZE = (48, 80)
WAIT_S = 60.0


@pytest.fixture(scope="module")
def poses(tmp_path_factory):
    from scail_backend.render.samples import walking_sequence

    path = tmp_path_factory.mktemp("poses") / "poses.npz"
    walking_sequence(5, SIZE).save(path)
    return path


@pytest.fixture
def garbage_video(tmp_path):
    """Not a video: an error about it would mean the input was opened before the output check."""
    path = tmp_path / "driving.mp4"
    path.write_bytes(b"\x00not a video" * 100)
    return path


def _one_line_error(capsys, code, *words):
    out, err = capsys.readouterr()
    assert code == EXIT_ERROR, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _listing(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir())


# --- never destroy an input -----------------------------------------------------------------------

@pytest.mark.parametrize("alias", ["same", "symlink", "dotdot"])
def test_extract_refuses_to_write_over_its_video_before_opening_it(tmp_path, capsys,
                                                                   garbage_video, alias):
    out = {"same": garbage_video, "dotdot": tmp_path / "sub" / ".." / garbage_video.name,
           "symlink": tmp_path / "link.mp4"}[alias]
    (tmp_path / "sub").mkdir()
    if alias == "symlink":
        out.symlink_to(garbage_video)
    before = garbage_video.read_bytes()
    code = main(["-q", "extract", str(garbage_video), "-o", str(out)])
    _one_line_error(capsys, code, "is the input", "destroy")
    assert garbage_video.read_bytes() == before


def test_render_refuses_to_write_over_its_poses(tmp_path, capsys, poses):
    copy = tmp_path / "p.npz"
    shutil.copy(poses, copy)
    code = main(["-q", "render", str(copy), "-o", str(copy)])
    _one_line_error(capsys, code, "is the input")
    assert PoseSequence.load(copy).num_frames == 5


@pytest.mark.parametrize("argv, suffix", [
    (["render", "{poses}", "-o", "{tmp}/out.avi"], ".mp4"),
    (["render", "{poses}", "-o", "{tmp}/out"], ".mp4"),
    (["extract", "{video}", "-o", "{tmp}/poses.txt"], ".npz"),
    (["clean", "{poses}", "-o", "{tmp}/clean.json"], ".npz"),
    (["align", "{poses}", "--ref", "{video}", "-o", "{tmp}/aligned.mp4"], ".npz"),
])
def test_an_output_named_for_another_file_type_is_refused_first(tmp_path, capsys, poses,
                                                                 garbage_video, argv, suffix):
    argv = [a.format(poses=poses, video=garbage_video, tmp=tmp_path) for a in argv]
    code = main(["-q", *argv])
    _one_line_error(capsys, code, f"writes a {suffix} file", "name it")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["driving.mp4"]


def test_render_refuses_a_frames_folder_that_holds_the_poses(tmp_path, capsys, poses):
    copy = tmp_path / "p.npz"
    shutil.copy(poses, copy)
    code = main(["-q", "render", str(copy), "-o", str(tmp_path / "x.mp4"),
                 "--frames", str(tmp_path)])
    _one_line_error(capsys, code, "--frames", "holds the input")
    assert _listing(tmp_path) == ["p.npz"]


def test_render_refuses_one_path_for_the_video_and_the_frames_before_any_work(tmp_path, capsys,
                                                                              poses):
    out = tmp_path / "o.mp4"
    code = main(["-q", "render", str(poses), "-o", str(out), "--frames", str(out)])
    _one_line_error(capsys, code, "-o and --frames both name")
    assert not out.exists()


def test_render_never_sweeps_away_a_frames_folder_of_other_files(tmp_path, capsys, poses,
                                                                 monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    code = main(["-q", "render", str(poses), "-o", str(tmp_path / "x.mp4"), "--frames", str(mine)])
    _one_line_error(capsys, code, "--frames", "already holds notes.txt", "new or empty folder")
    assert _listing(mine) == ["notes.txt"] and not (tmp_path / "x.mp4").exists()
    monkeypatch.chdir(mine)   # the current folder cannot be renamed away: refused before work
    code = main(["-q", "render", str(poses), "-o", str(tmp_path / "x.mp4"), "--frames", "."])
    _one_line_error(capsys, code, "--frames", "current folder")
    assert not (tmp_path / "x.mp4").exists()
    code = main(["-q", "render", str(poses), "-o", str(tmp_path / "x.mp4"), "--frames",
                 str(tmp_path / "frames")])   # a new folder, and then the same one again
    assert code == 0 and main(["-q", "render", str(poses), "-o", str(tmp_path / "x.mp4"),
                               "--frames", str(tmp_path / "frames")]) == 0
    assert _listing(tmp_path / "frames") == [f"frame_{i:05d}.png" for i in range(5)]


def test_run_refuses_outputs_linked_to_its_inputs(tmp_path, capsys, garbage_video):
    (tmp_path / "rendered.mp4").symlink_to(garbage_video)
    code = main(["-q", "run", str(tmp_path)])
    _one_line_error(capsys, code, "rendered.mp4", "is the input")
    assert _listing(tmp_path) == ["driving.mp4", "rendered.mp4"]


def test_extract_into_an_existing_folder_is_refused_before_estimation(tmp_path, capsys,
                                                                      garbage_video):
    code = main(["-q", "extract", str(garbage_video), "-o", str(tmp_path)])
    _one_line_error(capsys, code, "is a folder")


# --- options checked once, up front ---------------------------------------------------------------

@pytest.mark.parametrize("resolution", [["8", "8"], ["5000", "5000"], ["511", "896"]])
def test_extract_refuses_a_resolution_render_would_refuse(tmp_path, capsys, garbage_video,
                                                          resolution):
    code = main(["-q", "extract", str(garbage_video), "-o", str(tmp_path / "p.npz"),
                 "--resolution", *resolution])
    _one_line_error(capsys, code, "resolution", "16..4096")
    assert _listing(tmp_path) == ["driving.mp4"]


def test_arch_cuda_without_cuda_is_refused_before_estimation(tmp_path, capsys, garbage_video,
                                                             poses):
    from scail_backend.render.taichi_runtime import cuda_available

    if cuda_available():
        pytest.skip("this machine has CUDA")
    code = main(["-q", "run", str(tmp_path), "--arch", "cuda"])
    _one_line_error(capsys, code, "--arch cuda", "no usable CUDA")
    code = main(["-q", "render", str(poses), "-o", str(tmp_path / "x.mp4"), "--arch", "cuda"])
    _one_line_error(capsys, code, "--arch cuda")
    assert _listing(tmp_path) == ["driving.mp4"]


# --- -q / -v ------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["before", "after"])
def test_quiet_works_before_and_after_the_command_name(tmp_path, capsys, poses, where):
    args = ["render", str(poses), "-o", str(tmp_path / "x.mp4"), "--arch", "cpu"]
    assert main(["-q", *args] if where == "before" else [*args, "-q"]) == 0
    out, err = capsys.readouterr()
    assert out.split() == [str(tmp_path / "x.mp4")]
    assert "render:" not in err and "INFO" not in err  # no progress bar, no info lines


def test_verbose_after_the_command_and_both_flags_at_once(tmp_path, capsys, poses):
    assert main(["render", str(poses), "-o", str(tmp_path / "x.mp4"), "--arch", "cpu",
                 "-v"]) == 0
    assert "DEBUG" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["-v", "render", str(poses), "-o", str(tmp_path / "y.mp4"), "-q"])
    assert info.value.code == EXIT_ERROR


def test_quiet_run_of_a_clip_without_anybody_prints_exactly_one_line(tmp_path):
    """-q hides progress and third-party chatter (TensorFlow Lite, absl), not the outcome."""
    clip = write_clip(tmp_path / "nobody.mp4", frames=4, size=(96, 160))
    proc = subprocess.run([sys.executable, "-m", "scail_backend.cli", "extract", str(clip),
                           "-o", str(tmp_path / "p.npz"), "--estimator", "mediapipe", "-q"],
                          capture_output=True, text=True, timeout=WAIT_S)
    assert proc.returncode == EXIT_NOBODY
    assert proc.stdout.split() == [str(tmp_path / "p.npz")]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no person found in any of the 4 frames" in lines[0], lines


# --- signals --------------------------------------------------------------------------------------

def _long_poses(tmp_path) -> Path:
    from scail_backend.render.samples import walking_sequence

    path = tmp_path / "long.npz"
    walking_sequence(6000, (64, 96)).save(path)
    return path


def _wait_for_part_files(folder: Path, proc) -> list:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        parts = [p for p in folder.iterdir() if p.name.endswith(".part")]
        if len(parts) >= 2:  # the video's temporary file and the temporary PNG folder
            return parts
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)  # polling a folder another process writes: nothing to wait on
    raise AssertionError(f"no .part files in {folder}")


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129),
                                          (signal.SIGINT, 130)])
def test_a_stop_signal_mid_render_removes_part_files_and_says_so(tmp_path, signum, code):
    poses = _long_poses(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "scail_backend.cli", "-q", "render",
                             str(poses), "-o", str(out_dir / "out.mp4"), "--frames",
                             str(out_dir / "fr"), "--arch", "cpu"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = _stop_once_started(proc, signum, lambda: _wait_for_part_files(out_dir, proc))
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines() == [
        "scail-pose render: " + ("interrupted" if signum == signal.SIGINT
                                 else f"stopped by {signal.Signals(signum).name}")]
    assert stdout == "" and _listing(out_dir) == []


def _stop_once_started(proc, signum, started) -> tuple:
    """Send ``signum`` once ``started()`` returns; the (stdout, stderr) of the stopped process
    (killed if anything fails on the way)."""
    try:
        started()
        proc.send_signal(signum)
        return proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="module")
def long_take(tmp_path_factory) -> Path:
    """A take whose FBX export runs for seconds: two people, 4000 frames."""
    from scail_backend.render.samples import walking_sequence

    path = tmp_path_factory.mktemp("take") / "take.npz"
    walking_sequence(4000, (64, 96), num_people=2).save(path)
    return path


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_inside_blenders_exporter_ends_export_in_one_line(tmp_path, long_take,
                                                                        signum, code):
    """The signal lands inside Blender's FBX exporter, which catches it and raises
    RuntimeError: export must still exit as a stop, with no Blender traceback."""
    pytest.importorskip("bpy")
    temp, out = tmp_path / "temp", tmp_path / "out"
    temp.mkdir()
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "scail_backend.cli", "-q", "export",
                             str(long_take), "-o", str(out / "take.fbx")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(temp)})
    def exporting():
        deadline = time.monotonic() + WAIT_S
        while not any(temp.glob("scail_export_*")):  # the exporter's own folder: it has started
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)  # polling a folder another process writes: nothing to wait on
        time.sleep(0.5)  # well inside the exporter, which runs for seconds on this take

    stdout, stderr = _stop_once_started(proc, signum, exporting)
    assert proc.returncode == code, stderr
    assert stderr.strip().splitlines()[-1] == "scail-pose export: " + (
        "interrupted" if signum == signal.SIGINT else "stopped by SIGTERM")
    assert "Traceback" not in stderr and "Blender" not in stderr, stderr
    assert stdout == "" and _listing(out) == [] and _listing(temp) == []


@pytest.mark.skipif(not can_mount_tmpfs("size=64k"),
                    reason="needs unshare and user namespaces to mount a tiny tmpfs")
@pytest.mark.parametrize("where", ["output", "temporary"])
@pytest.mark.parametrize("suffix", [".bvh", ".fbx"])
def test_export_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, where, suffix):
    """A real ENOSPC on a 64 KiB tmpfs: where the file goes (filled up first), or the
    temporary folder Blender's exporter writes into (too small for the take)."""
    pytest.importorskip("bpy")
    from scail_backend.render.samples import walking_sequence

    poses = walking_sequence(600, (64, 96)).save(tmp_path / "take.npz")
    full = tmp_path / "full"
    full.mkdir()
    out = (full if where == "output" else tmp_path) / f"c{suffix}"
    fill = (f"(dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null; true) && "
            if where == "output" else f"export TMPDIR={full} && ")
    script = (f"mount -t tmpfs -o size=64k t {full} && {fill}"
              f"{sys.executable} -m scail_backend.cli -q export {poses} -o {out}; "
              f"echo \"rc=$?\"; ls -A {full}")
    proc = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=WAIT_S * 2)
    assert f"rc={EXIT_ERROR}" in proc.stdout, proc.stdout + proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and "Blender's exporter failed" not in proc.stderr
    if where == "output":
        assert line == (f"scail-pose export: error: cannot write {out}: no space left on the "
                        f"device; free some space or write elsewhere")
        assert proc.stdout.split()[1:] == ["filler"]  # nothing else left in the full folder
    else:
        assert line == (f"scail-pose export: error: cannot write {out}: no space left on the "
                        f"device in the temporary folder {full} (Blender's exporter writes "
                        f"there first); free some space there or set TMPDIR to a folder with "
                        f"room")
        assert proc.stdout.split()[1:] == []  # its temporary folder was removed
    assert _listing(tmp_path) == ["full", "take.npz"]


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_render_frames_into_a_linked_folder_writes_where_the_link_leads(tmp_path, poses):
    """`--frames LINK` to a folder on a bigger disk: the frames land there, the link stays."""
    big = tmp_path / "bigdisk" / "frames"
    big.mkdir(parents=True)
    for i in range(7):
        (big / f"frame_{i:05d}.png").write_bytes(b"stale")
    (tmp_path / "frames").symlink_to(big)
    assert main(["-q", "render", str(poses), "-o", str(tmp_path / "out.mp4"), "--frames",
                 str(tmp_path / "frames"), "--arch", "cpu"]) == 0
    assert (tmp_path / "frames").is_symlink() and os.readlink(tmp_path / "frames") == str(big)
    assert _listing(big) == [f"frame_{i:05d}.png" for i in range(5)]  # the 5 new frames only
    assert _listing(tmp_path / "bigdisk") == ["frames"]
    assert _listing(tmp_path) == ["bigdisk", "frames", "out.mp4"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_during_estimation_leaves_no_output(tmp_path):
    clip = write_clip(tmp_path / "clip.mp4", frames=400, size=(96, 160))
    proc = subprocess.Popen([sys.executable, "-m", "scail_backend.cli", "extract", str(clip),
                             "-o", str(tmp_path / "p.npz"), "--estimator", "mediapipe"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_S
        seen = ""
        while "estimate:" not in seen:  # the progress bar has started
            assert time.monotonic() < deadline and proc.poll() is None, seen
            seen += os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert stderr.strip().splitlines()[-1] == "scail-pose extract: stopped by SIGTERM"
    assert _listing(tmp_path) == ["clip.mp4"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_while_blender_sets_up_the_synth_scene_stops_cleanly(tmp_path):
    """A signal landing inside Blender's own start-up must not crash it (it is held until
    the critical section ends); the staging folder, and the output folder it made, are
    removed."""
    pytest.importorskip("bpy")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "scail_backend.cli", "-q", "synth",
                             "--motion", "demo", "-o", str(out), "--frames", "100",
                             "--resolution", "128", "224"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + WAIT_S
        while not (out.is_dir() and any(out.iterdir())):  # its staging folder: Blender starts
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(1.2)  # into Blender's add-on registration here (~1-2 s after), where an
        proc.send_signal(signal.SIGTERM)  # exception used to print tracebacks or crash it
        _, stderr = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines() == ["scail-pose synth: stopped by SIGTERM"]
    assert not out.exists()   # the folder it made, with its staging folder, is gone


# --- the OS at the boundary: a full disk ----------------------------------------------------------

@pytest.mark.skipif(not can_mount_tmpfs("size=64k"),
                    reason="needs unshare and user namespaces to mount a tiny tmpfs")
def test_extract_onto_a_full_disk_is_one_line_and_leaves_nothing(tmp_path):
    """A real ENOSPC: a 64 KiB tmpfs, filled up, in a private mount namespace."""
    clip = write_clip(tmp_path / "clip.mp4", frames=4, size=(96, 160))
    full = tmp_path / "full"
    full.mkdir()
    script = (f"mount -t tmpfs -o size=64k t {full} && "
              f"(dd if=/dev/zero of={full}/filler bs=4k 2>/dev/null; true) && "
              f"{sys.executable} -m scail_backend.cli -q extract {clip} -o {full}/p.npz "
              f"--estimator mediapipe; echo \"rc=$?\"; ls -A {full}")
    proc = subprocess.run(["unshare", "-Urm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=WAIT_S)
    assert f"rc={EXIT_ERROR}" in proc.stdout, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left on the device" in lines[0], proc.stderr
    assert str(full / "p.npz") in lines[0]
    assert proc.stdout.split()[-1] == "filler"  # nothing else left in the full folder



@pytest.mark.parametrize("argv", [
    ["extract", "x.mp4", "-o", "a.npz", "--resolution", "0", "0"],   # argparse's own check
    ["extract", "x.mp4"],                                            # a required option missing
    ["bogus"],                                                       # no such command
    ["-q", "run", "folder", "-v"],                                   # contradicting flags
])
def test_option_errors_are_one_line_without_the_usage_block(argv, capsys):
    from scail_backend.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error:" in err[0] and "--help" in err[0], err


@pytest.mark.parametrize("argv, command", [
    (["run", "folder", "-o", "x.npz"], "scail-pose run"),
    (["-q", "client", "extract", "a.mp4", "--frobnicate"], "scail-pose client extract"),
])
def test_an_unknown_option_is_named_with_its_own_commands_help(argv, command, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{command}: error: unrecognized arguments: "), err
    assert err[0].endswith(f"(see {command} --help)"), err


@pytest.mark.parametrize("command", [["extract"], ["run"], ["client", "extract"]])
def test_smooth_help_and_its_error_name_the_same_choices(command, capsys):
    from scail_backend.smoothing import strength_choices

    with pytest.raises(SystemExit):
        main([*command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split()).replace("[0, 1]", "[0, 1]")
    assert strength_choices() in help_text
    with pytest.raises(SystemExit) as info:
        main(["-q", *command, "clip.mp4", "--smooth", "banana"])
    assert info.value.code == EXIT_ERROR and strength_choices() in capsys.readouterr().err


def test_a_reader_that_goes_away_ends_the_command_quietly_with_sigpipes_code():
    """`scail-pose ... | head`: once the reader has gone there is nobody to tell, so no
    'Broken pipe' error line; the exit code is the shell's for SIGPIPE."""
    proc = subprocess.Popen([sys.executable, "-m", "scail_backend.cli", "synth", "--list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()                      # the reader leaves before anything is written
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""
