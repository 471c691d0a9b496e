"""Every failure reaches the artist as one line in the status bar and the Info log.

* :func:`guard` wraps an operator class's ``execute`` / ``invoke``: an exception that escapes
  them (a bug, a bpy error) becomes one ``ERROR`` report naming the operator and the error, and
  ``{'CANCELLED'}``, instead of a raw traceback; the traceback goes to the system console
  (``log.exception``). Errors of this project (``ScailError``) are reported as their message.
* :func:`to_user` reports from places that are not an operator (the add-on's timer, which
  finishes backend jobs): Blender only shows reports made by operators, so it runs the internal
  ``scail.report`` operator, whose only work is that report.
"""

from __future__ import annotations

import functools
import logging

import bpy
from bpy.props import EnumProperty, StringProperty
from scail_protocol.errors import ScailError

log = logging.getLogger(__name__)

_KINDS = (("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", ""))


def one_line(error) -> str:
    """One line for the status bar: an error's first line, prefixed with its type unless it is
    one of this project's errors (whose messages are written for the artist)."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(error, BaseException) and not isinstance(error, ScailError):
        return f"{type(error).__name__}: {first}" if first else type(error).__name__
    return first


def guard(cls):
    """Make ``cls.execute`` and ``cls.invoke`` report any escaping exception in one line.

    Returns the class (usable as a decorator); classes are changed once even if guarded twice.
    """
    if getattr(cls, "_scail_guarded", False):
        return cls
    if "execute" in _own_methods(cls):
        cls.execute = _guard_execute(cls.execute)
    if "invoke" in _own_methods(cls):
        cls.invoke = _guard_invoke(cls.invoke)
    cls._scail_guarded = True
    return cls


def _own_methods(cls) -> set:
    """Names of methods defined by the class or its non-Blender bases (mixins, helpers)."""
    names = set()
    for base in cls.__mro__:
        if base.__module__.startswith("bpy") or base is object:
            continue
        names.update(n for n in ("execute", "invoke") if n in vars(base))
    return names


def fail(operator, error) -> set:
    """Report ``error`` on ``operator`` in one line and cancel: a ScailError as it is, anything
    else as "<label> failed: ..." with the traceback in the system console."""
    if not isinstance(error, ScailError):
        log.exception("SCAIL: %s failed", operator.bl_idname)
        message = f"{operator.bl_label} failed: {one_line(error)} (details in the system console)"
    else:
        message = one_line(error)
    operator.report({"ERROR"}, message)
    return {"CANCELLED"}


def _guard_execute(method):
    @functools.wraps(method)
    def execute(self, context):
        try:
            return method(self, context)
        except Exception as e:  # noqa: BLE001 - the operator boundary: one line to the artist
            return fail(self, e)
    return execute


def _guard_invoke(method):
    @functools.wraps(method)
    def invoke(self, context, event):
        try:
            return method(self, context, event)
        except Exception as e:  # noqa: BLE001 - as above
            return fail(self, e)
    return invoke


class SCAIL_OT_report(bpy.types.Operator):
    """Show a SCAIL message in the status bar and the Info log"""

    bl_idname = "scail.report"
    bl_label = "SCAIL Report"
    bl_options = {"INTERNAL"}

    kind: EnumProperty(items=_KINDS, default="INFO")
    message: StringProperty()

    def execute(self, context):
        self.report({self.kind}, self.message)
        return {"FINISHED"}


def to_user(kind: str, message: str) -> None:
    """Report ``message`` (one line) as 'INFO', 'WARNING' or 'ERROR' from outside an operator."""
    message = one_line(message)
    try:
        bpy.ops.scail.report(kind=kind, message=message)
    except RuntimeError:
        pass  # an ERROR report raises in the caller too; Blender has shown and logged it
    except AttributeError:  # not registered (the add-on is being removed)
        log.log(logging.ERROR if kind == "ERROR" else logging.INFO, "%s", message)


def warn(message: str, level: int = logging.WARNING) -> None:
    """A warning (or, with ``level`` INFO, a note) from outside an operator, said once: in the
    status bar and Info log when Blender has a window; one log line in background mode
    (``blender -b``, ``scail-pose export``), where Blender would only print its report too."""
    if bpy.app.background:
        log.log(level, "%s", message)
    else:
        to_user("WARNING" if level >= logging.WARNING else "INFO", message)


classes = (SCAIL_OT_report,)
