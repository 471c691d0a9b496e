"""Request paths confined to the server's configured roots.

A path in a request is accepted only if, with every symlink resolved, it lies inside one of the
roots given with ``--root``. Relative paths are refused (they would depend on the server's
current directory). Without any root, requests must upload their files instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from scail_protocol.errors import OutputError
from scail_protocol.outputs import check_output_file

from .validate import RequestError

MAX_PATH_CHARS = 4096


class Roots:
    """The folders a server may read from and write to.

    Args:
        roots: existing folders; each is resolved (symlinks followed) once, here.
    """

    def __init__(self, roots=()):
        resolved = []
        for root in roots:
            path = Path(root).expanduser().resolve()
            if not path.is_dir():
                raise RequestError("forbidden", f"root {root} is not an existing folder")
            resolved.append(path)
        self.roots = tuple(resolved)

    def __bool__(self) -> bool:
        return bool(self.roots)

    def input_file(self, text, what: str = "file") -> Path:
        """An existing regular file inside a root (symlinks resolved).

        Raises:
            RequestError: code ``forbidden`` (outside the roots, relative, odd characters) or
                ``not_found``.
        """
        path = self._absolute(text, what)
        real = Path(os.path.realpath(path))
        self._check_inside(real, text, what)
        if not real.is_file():
            raise RequestError("not_found", f"{what} {text} does not exist on the server "
                                            f"(or is not a file)")
        return real

    def output_file(self, text, what: str = "output", *, suffix: Optional[str] = None) -> Path:
        """A file path to write inside a root: its folder exists; an existing target (or the
        symlink it is) also resolves inside a root. With ``suffix`` (the one type of file the
        job writes there, e.g. ``.npz``) the name, and the file a link there points to, must
        end in it, as the CLI requires (``scail_protocol.outputs.check_output_file``).

        Raises:
            RequestError: code ``forbidden`` or ``not_found`` (missing folder).
            OutputError: another suffix than ``suffix``, or a folder the server cannot write in.
        """
        path = self._absolute(text, what)
        real = Path(os.path.realpath(path))
        self._check_inside(real, text, what)
        if real.is_dir():
            raise RequestError("forbidden", f"{what} {text} is a folder, expected a file path")
        if not real.parent.is_dir():
            raise RequestError("not_found", f"folder of {what} {text} does not exist on the server")
        check_output_file(path, what=what, suffix=suffix)
        if suffix is not None and real.suffix.lower() != suffix:
            raise OutputError(f"{what} {text} is a link to {real}; this writes a {suffix} file, "
                              f"so name a {suffix} file that is not a link to another kind")
        return real

    def output_dir(self, text, what: str = "output folder") -> Path:
        """An existing folder inside a root."""
        path = self._absolute(text, what)
        real = Path(os.path.realpath(path))
        self._check_inside(real, text, what)
        if not real.is_dir():
            raise RequestError("not_found", f"{what} {text} is not an existing folder on the server")
        return real

    def confine(self, real_path, what: str = "output") -> None:
        """Refuse a real (resolved) path outside every root: the last check before an output
        is renamed into place (its folder may have been swapped for a link meanwhile).

        Raises:
            RequestError: code ``forbidden``.
        """
        real = Path(os.path.realpath(real_path))
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            raise RequestError("forbidden", f"{what} {real_path} is now outside the server's "
                                            f"roots (was its folder replaced by a link?); "
                                            f"nothing was written")

    def _absolute(self, text, what: str) -> Path:
        if not self.roots:
            raise RequestError("forbidden", f"this server accepts no {what} paths (started without "
                                            f"--root); upload the file, or restart it with --root DIR")
        if not isinstance(text, str) or not text or len(text) > MAX_PATH_CHARS or "\0" in text:
            raise RequestError("forbidden", f"{what} path must be a non-empty string without NUL "
                                            f"of at most {MAX_PATH_CHARS} characters")
        path = Path(text)
        if not path.is_absolute():
            raise RequestError("forbidden", f"{what} path {text!r} is relative; send an absolute "
                                            f"path under one of the server's roots")
        return path

    def _check_inside(self, real: Path, text, what: str) -> None:
        if not any(real == root or real.is_relative_to(root) for root in self.roots):
            raise RequestError("forbidden", f"{what} {text} is outside the server's roots "
                                            f"({', '.join(map(str, self.roots))})")
