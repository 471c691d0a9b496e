"""Where outputs go: never over an input, and never half-written.

Every output of the project (CLI, server jobs, the command-line client, the Blender add-on) is
checked and written through this module, so the two rules live in one place:

* **Never destroy an input.** :func:`check_output_file` / :func:`check_output_folder` refuse,
  before any work, an output path that resolves to one of the inputs: the same file through any
  path, symlink, hard link or letter case (``os.path.samefile``, i.e. device and inode, when
  both exist; normalised real paths otherwise), or, for a folder that is replaced as a whole,
  a folder holding an input.
* **Never half-written.** :func:`atomic_path`, :func:`atomic_file`, :func:`write_atomically`
  and :func:`atomic_folder` write into a temporary sibling (``.NAME.XXXXXXXX.part``, NAME cut
  short where the whole would pass the file system's 255-byte limit on names), fsync it,
  give it the permissions a new file gets under the process umask (0644 / 0755 under umask
  022; temporary files start private) and rename it over the target only when the work
  succeeded. On any exception, Ctrl-C and SIGTERM included, the temporary is removed and the
  target is untouched. The folder is pinned when the write starts (an open directory handle):
  if its path is swapped (for a symlink, say) before the rename, the write is refused instead
  of landing somewhere else.

OS errors are turned into :class:`~scail_protocol.errors.OutputError` with one line naming the
path (a full disk says so). Pure standard library: this runs inside Blender's Python too.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import secrets
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from .errors import OutputError

PART_SUFFIX = ".part"  # temporary outputs: ".NAME.<random>.part" beside the target
NAME_MAX = 255  # bytes in one file name: the limit of common file systems, where none is told
# errors only writing causes: errno -> (reason, what to do)
_FREE_SPACE = "free some space or write elsewhere"
_WRITE_ERRNOS = {errno.ENOSPC: ("no space left on the device", _FREE_SPACE),
                 errno.EDQUOT: ("disk quota exceeded", _FREE_SPACE),
                 errno.EROFS: ("the file system is read-only", "write elsewhere"),
                 errno.EFBIG: ("the file is too large for this file system", "write elsewhere")}
_umask_lock = threading.Lock()


# --- permissions ----------------------------------------------------------------------------------

def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:  # elsewhere the only way is to set it and put it back at once
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode() -> int:
    """Permissions of a new file under the umask (0644 under umask 022)."""
    return 0o666 & ~current_umask()


def folder_mode() -> int:
    """Permissions of a new folder under the umask (0755 under umask 022)."""
    return 0o777 & ~current_umask()


# --- the guard ------------------------------------------------------------------------------------

def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name the same file or folder.

    Both existing: same device and inode (symlinks, hard links, ``..``, letter case on a
    case-insensitive file system). Otherwise: equal normalised real paths.
    """
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return _real(a) == _real(b)


def check_output_file(path, inputs: Iterable = (), *, what: str = "output",
                      suffix=None) -> Path:
    """Check, before any work, that ``path`` can take a new file.

    Args:
        path: the file to be written (it may exist: it is then replaced).
        inputs: the paths the command reads (files or folders); None entries are skipped.
        what: how the message names the output, e.g. ``"-o"``.
        suffix: the file type written there (e.g. ``contract.POSES_SUFFIX``), or a tuple of
            the types the command can write (``(".bvh", ".fbx")``), so that a name promising
            another type (``out.avi`` for an MP4) is refused, and a folder given instead of a
            file gets a suggestion the command accepts; None = any.

    Returns:
        ``path`` as a Path.

    Raises:
        OutputError: ``path`` resolves to an input, is a folder, has another suffix than
            ``suffix``, its name is too long for its file system, or its folder is missing,
            not a folder or cannot be written in.
    """
    path = Path(path)
    suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix or ())
    _check_name(path)
    _refuse_inputs(path, inputs, what, replaced_folder=False)
    if path.is_dir():
        if not suffixes:
            raise OutputError(f"{what} {path} is a folder; give the path of a file in it")
        example = path.suffix if path.suffix.lower() in suffixes else suffixes[0]
        raise OutputError(f"{what} {path} is a folder; give a file name such as "
                          f"{path / 'output'}{example}")
    if suffixes and path.suffix.lower() not in suffixes:
        if len(suffixes) == 1:
            raise OutputError(f"{what} {path}: this writes a {suffixes[0]} file; name it "
                              f"{_renamed(path, suffixes)}")
        names = _renamed(path, suffixes)
        raise OutputError(f"{what} {path}: this writes {' or '.join(suffixes)} files; name it "
                          f"{names}")
    _check_parent(path, what)
    return path


def _renamed(path: Path, suffixes: tuple) -> str:
    """The name(s) ``path`` could have instead: ``x.mp4`` → ``x.npz``; a name that already
    carries an accepted suffix before another one (``x.npz.part``) loses the extra one."""
    stem = Path(path.stem)
    if stem.suffix.lower() in suffixes:
        return stem.name
    return " or ".join(path.with_suffix(s).name for s in suffixes)


def check_output_folder(path, inputs: Iterable = (), *, what: str = "output folder",
                        only: Optional[str] = None) -> Path:
    """Check, before any work, that ``path`` can become a folder that replaces any old one.

    Refuses a folder that is, or holds, one of ``inputs`` (it would be replaced as a whole),
    an existing file of that name, and a missing parent folder. With ``only`` (a glob such as
    ``"frame_*.png"``: what this output puts there), an existing folder is replaced only when
    it holds nothing else, so a folder of the user's own files is never swept away; nor is the
    current folder or one that holds it (it cannot be renamed away).

    A symbolic link to a folder (a frames folder on a bigger disk, say) is followed: the
    folder it leads to is checked here, and is what :func:`atomic_folder` replaces, beside
    itself; the link stays.

    Returns:
        ``path`` as a Path (the link's own path for a link).

    Raises:
        OutputError: as above, one line.
    """
    path = Path(path)
    _check_name(path)
    _refuse_inputs(path, inputs, what, replaced_folder=True)
    real = _followed(path)
    if real.exists() and not real.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder")
    if only is not None and real.is_dir():
        _refuse_foreign_contents(real, what, only)
    _check_parent(real, what)
    return path


def _followed(path: Path) -> Path:
    """Where ``path`` leads when it is a symbolic link (links resolved), else ``path``."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _refuse_foreign_contents(path: Path, what: str, only: str) -> None:
    if is_inside(Path.cwd(), path):
        raise OutputError(f"{what} {path} is (or holds) the current folder, which cannot be "
                          f"replaced; choose a new folder")
    try:
        others = sorted(entry.name for entry in os.scandir(path)
                        if not (fnmatch.fnmatch(entry.name, only) and entry.is_file()))
    except OSError as e:
        raise output_error(path, e) from None
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise OutputError(f"{what} {path} already holds {shown}; the folder is replaced as a "
                          f"whole, which is allowed only when it holds nothing but {only} "
                          f"files, so choose a new or empty folder")


def _refuse_inputs(path: Path, inputs: Iterable, what: str, replaced_folder: bool) -> None:
    for source in inputs:
        if source is None:
            continue
        if os.path.lexists(path) and same_file(path, source):
            raise OutputError(f"{what} {path} is the input {source}; writing it would destroy "
                              f"the input, so choose another output path")
        if replaced_folder and is_inside(source, path):
            raise OutputError(f"{what} {path} holds the input {source}; it would be replaced "
                              f"as a whole, so choose another folder")


def _check_parent(path: Path, what: str) -> None:
    parent = _parent(path)
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {what} {path}: {parent} is a file, not a folder")
    if not parent.is_dir():
        raise OutputError(f"cannot write {what} {path}: folder {parent} does not exist; "
                          f"create it first")
    _probe_writable(path, parent)


def _probe_writable(path: Path, parent: Path) -> None:
    """Create and remove a file in ``parent``, so that a folder this process cannot write in
    (permissions, a read-only or virtual file system) is refused before the work, not after."""
    try:
        fd, probe = tempfile.mkstemp(prefix=_temporary_name(path.name, 8 + len(".probe")),
                                     suffix=".probe", dir=parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: no file can be created in {parent} "
                          f"({describe_os_error(e)})") from None
    os.close(fd)
    os.unlink(probe)


def _check_name(path: Path) -> None:
    """Refuse a name longer than the file system of its folder takes (before any other check:
    the OS answers "File name too long" to every question about such a path)."""
    try:
        limit = int(os.pathconf(_parent(path), "PC_NAME_MAX")) or NAME_MAX
    except (AttributeError, OSError, ValueError):  # no pathconf here, or no such folder
        limit = NAME_MAX
    length = len(os.fsencode(path.name))
    if length > limit:
        raise OutputError(f"cannot write {path}: its name is {length} bytes long, and file "
                          f"names here take at most {limit}; choose a shorter name")


def _temporary_name(name: str, rest: int) -> str:
    """``"." + name + "."``, the start of a temporary name beside ``name``, with ``name`` cut
    short (characters off its end) so that ``rest`` more bytes still fit in NAME_MAX: the
    temporary of a valid 250-byte name is a valid name too."""
    room = NAME_MAX - rest - 2
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}."


def is_inside(source, folder) -> bool:
    """Whether ``source`` lies at or below ``folder`` (links resolved); False when ``folder`` is
    not an existing folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    real_source, real_folder = _real(source), _real(folder)
    return real_source == real_folder or real_source.startswith(real_folder.rstrip(os.sep) + os.sep)


def _real(path) -> str:
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def _parent(path: Path) -> Path:
    return path.parent if str(path.parent) else Path(".")


# --- errors ---------------------------------------------------------------------------------------

def describe_os_error(e: OSError) -> str:
    """A short reason for an OSError (``"no space left on the device"``, ``"Permission
    denied"``), for one-line messages."""
    return _WRITE_ERRNOS[e.errno][0] if e.errno in _WRITE_ERRNOS else e.strerror or str(e)


def is_write_error(e: BaseException) -> bool:
    """Whether ``e`` is an OSError that only writing causes (full disk, quota, read-only)."""
    return isinstance(e, OSError) and e.errno in _WRITE_ERRNOS


def output_error(path, e: OSError) -> OutputError:
    """The OutputError for failing to write ``path`` with ``e`` (with what to do, where the
    error says it: ``"cannot write X: no space left on the device; free some space ..."``)."""
    advice = f"; {_WRITE_ERRNOS[e.errno][1]}" if e.errno in _WRITE_ERRNOS else ""
    return OutputError(f"cannot write {path}: {describe_os_error(e)}{advice}")


# --- atomic writes --------------------------------------------------------------------------------

class _Pinned:
    """The target's folder, held open while writing so that a swapped path is noticed."""

    def __init__(self, target: Path):
        self.target = target
        self.parent = _parent(target)
        if not self.parent.is_dir():
            raise OutputError(f"cannot write {target}: folder {self.parent} does not exist")
        self.fd = None
        self.made = []  # temporaries created, so an interrupt anywhere still removes them
        if os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY"):
            try:
                self.fd = os.open(self.parent, os.O_RDONLY | os.O_DIRECTORY)
            except OSError as e:
                raise output_error(target, e) from None

    def create(self, directory: bool) -> Path:
        """A new private temporary file or folder in the pinned folder."""
        for _ in range(100):
            token = secrets.token_hex(4)
            name = (_temporary_name(self.target.name, len(token) + len(PART_SUFFIX))
                    + token + PART_SUFFIX)
            try:
                if directory:
                    os.mkdir(name if self.fd is not None else self.parent / name, 0o700,
                             **self._at())
                else:
                    fd = os.open(name if self.fd is not None else self.parent / name,
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                                 0o600, **self._at())
                    os.close(fd)
                self.made.append((self.parent / name, directory))
                return self.parent / name
            except FileExistsError:
                continue
            except OSError as e:
                raise output_error(self.target, e) from None
        raise OutputError(f"cannot write {self.target}: no free temporary name in {self.parent}")

    def check_unchanged(self) -> None:
        """Raise OutputError when the folder's path no longer names the pinned folder."""
        if self.fd is None:
            return
        try:
            now, pinned = os.stat(self.parent), os.fstat(self.fd)
        except OSError as e:
            raise output_error(self.target, e) from None
        if (now.st_dev, now.st_ino) != (pinned.st_dev, pinned.st_ino):
            raise OutputError(f"cannot write {self.target}: its folder {self.parent} was "
                              f"replaced while the output was being made; nothing was written")

    def landing(self) -> Path:
        """Where the rename puts the output: the pinned folder's real path now, plus the name.

        Read from the open handle where the OS tells it (Linux ``/proc/self/fd``), so a path
        swapped since cannot mislead a check; else from the path.
        """
        if self.fd is not None:
            try:
                return Path(os.readlink(f"/proc/self/fd/{self.fd}")) / self.target.name
            except OSError:
                pass
        return Path(os.path.realpath(self.parent)) / self.target.name

    def replace(self, temp: Path) -> None:
        """Rename ``temp`` over the target inside the pinned folder, then sync the folder."""
        if self.fd is not None and os.replace in os.supports_dir_fd:
            os.replace(temp.name, self.target.name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        else:
            os.replace(temp, self.target)
        if self.fd is not None:
            try:
                os.fsync(self.fd)
            except OSError:
                pass  # some file systems cannot sync a folder; the rename itself is atomic

    def sync_and_chmod(self, temp: Path, mode: int, directory: bool) -> None:
        """fsync ``temp`` (a folder: each file in it, then the folder), then set its mode."""
        if self.fd is None:  # no folder handles here (Windows): by path
            files = [e.path for e in os.scandir(temp) if e.is_file()] if directory else [temp]
            for path in files:
                _fsync(os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0)))
            os.chmod(temp, mode)
            return
        fd = os.open(temp.name, os.O_RDONLY | (os.O_DIRECTORY if directory else 0),
                     dir_fd=self.fd)
        try:
            if directory:
                for entry in os.scandir(fd):
                    if entry.is_file(follow_symlinks=False):
                        _fsync(os.open(entry.name, os.O_RDONLY, dir_fd=fd))
            os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)

    def remove(self, temp: Path, directory: bool) -> None:
        """Delete ``temp`` (inside the pinned folder, whatever its path names now)."""
        try:
            if directory:
                try:
                    shutil.rmtree(self._name(temp), **self._at())
                except NotImplementedError:  # no fd-based rmtree on this platform
                    shutil.rmtree(temp)
            else:
                os.unlink(self._name(temp), **self._at())
        except OSError:
            pass  # already gone, or never made

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _name(self, temp: Path):
        return temp.name if self.fd is not None else temp

    def _at(self) -> dict:
        return {"dir_fd": self.fd} if self.fd is not None else {}


def _fsync(fd: int) -> None:
    """fsync and close ``fd``."""
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target, *, before_rename: Optional[Callable[[Path], None]] = None
                ) -> Iterator[Path]:
    """A temporary file path beside ``target`` that replaces ``target`` when the block succeeds.

    For writers that want a path (PyAV, OpenCV)::

        with atomic_path("out.mp4") as tmp:
            encode_to(tmp)

    The temporary file exists (empty, private) when the block starts. On success it is
    fsynced, given :func:`file_mode` and renamed over ``target``; on any exception it is
    removed and ``target`` is untouched.

    Args:
        target: the output file; its folder must exist.
        before_rename: called right before the rename with the real path the output lands at
            (the pinned folder's real path now, plus the name); raising there aborts the write
            (the server checks that it is still inside its roots).

    Raises:
        OutputError: the folder is missing or was replaced meanwhile, or the OS refused (full
            disk, read-only, permissions), one line. Exceptions of the block pass through
            unchanged, except full-disk-type OSErrors, which become OutputError.
    """
    target = Path(target)
    pinned = _Pinned(target)
    try:
        temp = pinned.create(directory=False)
        with _removed_on_error(pinned, temp, directory=False):
            yield temp
            _finish(pinned, temp, file_mode(), before_rename)
    except BaseException:
        _remove_made(pinned)  # also when the interrupt landed between create() and the block
        raise
    finally:
        pinned.close()


def _remove_made(pinned: "_Pinned") -> None:
    for temp, directory in pinned.made:
        pinned.remove(temp, directory)


@contextmanager
def _removed_on_error(pinned: "_Pinned", temp: Path, directory: bool):
    """Remove ``temp`` when the block fails; full-disk-type OSErrors become OutputError."""
    try:
        yield
    except OSError as e:
        pinned.remove(temp, directory)
        if is_write_error(e):
            raise output_error(pinned.target, e) from None
        raise
    except BaseException:
        pinned.remove(temp, directory)
        raise


def _finish(pinned: _Pinned, temp: Path, mode: int, before_rename, directory=False) -> None:
    """Re-check the folder, sync, set the mode, then rename (files; folders are swapped)."""
    try:
        pinned.check_unchanged()
        pinned.sync_and_chmod(temp, mode, directory)
        if before_rename is not None:
            before_rename(pinned.landing())
        if not directory:
            pinned.replace(temp)
    except OSError as e:
        raise output_error(pinned.target, e) from None


@contextmanager
def atomic_file(target, mode: str = "wb", *,
                before_rename: Optional[Callable[[Path], None]] = None, **open_kwargs):
    """An open temporary file beside ``target`` that replaces it when the block succeeds::

        with atomic_file("poses.npz") as f:
            np.savez_compressed(f, **arrays)

    Args:
        target: the output file; its folder must exist.
        mode: ``open`` mode for writing ("wb", "w", ...).
        before_rename: as :func:`atomic_path`.
        open_kwargs: passed to ``open`` (e.g. ``encoding``).

    Raises:
        OutputError: as :func:`atomic_path`; a full disk while writing included.
    """
    with atomic_path(target, before_rename=before_rename) as temp:
        with open(temp, mode, **open_kwargs) as f:
            yield f


def write_atomically(target, write: Callable, *, mode: str = "wb",
                     before_rename: Optional[Callable[[Path], None]] = None) -> Path:
    """Call ``write(file)`` on a temporary file beside ``target``, then rename it into place.

    Returns:
        ``target`` as a Path.

    Raises:
        OutputError: as :func:`atomic_file`; whatever ``write`` raises passes through (nothing
            is left at or beside ``target``).
    """
    with atomic_file(target, mode, before_rename=before_rename) as f:
        write(f)
    return Path(target)


@contextmanager
def atomic_folder(target, *, before_rename: Optional[Callable[[Path], None]] = None
                  ) -> Iterator[Path]:
    """A temporary folder beside ``target`` that replaces the folder ``target`` on success.

    Files written into it are fsynced at the end; the folder gets :func:`folder_mode` and its
    files keep theirs. An existing folder ``target`` is replaced only when the block succeeds
    (moved aside, the new one renamed in, the old one deleted; put back if the rename fails);
    on any exception the temporary folder is deleted and ``target`` is untouched. A symbolic
    link ``target`` is followed: the folder it leads to is replaced (its temporary made beside
    it, on its disk) and the link is kept.

    Raises:
        OutputError: ``target`` is an existing file, its parent is missing or was replaced
            meanwhile, or the OS refused, one line.
    """
    target = _followed(Path(target))
    if target.exists() and not target.is_dir():
        raise OutputError(f"cannot write the folder {target}: a file of that name exists")
    pinned = _Pinned(target)
    try:
        temp = pinned.create(directory=True)
        with _removed_on_error(pinned, temp, directory=True):
            yield temp
            _finish(pinned, temp, folder_mode(), before_rename, directory=True)
            try:
                _swap_folder(pinned, temp)
            except OSError as e:
                raise output_error(target, e) from None
    except BaseException:
        _remove_made(pinned)  # also when the interrupt landed between create() and the block
        raise
    finally:
        pinned.close()


def _swap_folder(pinned: _Pinned, temp: Path) -> None:
    target = pinned.target
    if not os.path.lexists(target):
        pinned.replace(temp)
        return
    if not target.is_dir():
        raise OutputError(f"cannot write the folder {target}: it is not a folder")
    old = pinned.create(directory=True)
    moved = old / target.name
    os.replace(target, moved)
    try:
        pinned.replace(temp)
    except BaseException:
        if not os.path.lexists(target):
            os.replace(moved, target)  # put the old folder back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def is_temporary(path) -> bool:
    """Whether ``path`` names a temporary output of this module (``.NAME.XXXXXXXX.part``)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(PART_SUFFIX)
