"""Add-on preferences: where the backend is, its key, and how to start a local one."""

from __future__ import annotations

from dataclasses import dataclass

import bpy
from bpy.props import FloatProperty, StringProperty
from scail_protocol.client import DEFAULT_ADDRESS, DEFAULT_TIMEOUT_S  # loopback; 10 s

DEFAULT_START_COMMAND = "scail-pose serve"
START_COMMAND_LABEL = "Start Command"  # named in the messages of Start Local Backend
PREFERENCES_PATH = "Edit > Preferences > Add-ons > SCAIL Pose Studio"


class SCAIL_AP_preferences(bpy.types.AddonPreferences):
    """Backend connection settings (Edit > Preferences > Add-ons > SCAIL Pose Studio)."""

    bl_idname = __package__

    backend_address: StringProperty(
        name="Backend Address", default=DEFAULT_ADDRESS,
        description="ZeroMQ address of `scail-pose serve`, e.g. tcp://127.0.0.1:5555")
    key_file: StringProperty(
        name="Key File", subtype="FILE_PATH", default="",
        description="File holding the shared key (empty: the backend's default, "
                    "~/.config/scail-pose/server.key)")
    start_command: StringProperty(
        name=START_COMMAND_LABEL, default=DEFAULT_START_COMMAND,
        description="Command that starts a local backend, run without a shell; give the full "
                    "path when Blender does not find scail-pose, e.g. "
                    "/path/to/venv/bin/scail-pose serve. Stopped when the add-on is disabled")
    timeout_s: FloatProperty(
        name="Timeout", default=DEFAULT_TIMEOUT_S, min=0.5, max=600.0, unit="TIME_ABSOLUTE",
        description="Seconds of silence after which the backend counts as unreachable")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "backend_address")
        layout.prop(self, "key_file")
        layout.prop(self, "timeout_s")
        row = layout.row(align=True)
        row.prop(self, "start_command")
        row.operator("scail.start_backend", text="", icon="PLAY")


@dataclass(frozen=True)
class BackendSettings:
    """Plain copy of the preferences (what the client needs, usable without bpy data)."""

    address: str = DEFAULT_ADDRESS
    key_file: str = ""
    start_command: str = DEFAULT_START_COMMAND
    timeout_s: float = DEFAULT_TIMEOUT_S


def backend_settings(context=None) -> BackendSettings:
    """The preferences as :class:`BackendSettings` (defaults when the add-on was registered by a
    script without being enabled, as in tests and ``blender -b --python``)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    if addon is None or addon.preferences is None:
        return BackendSettings()
    p = addon.preferences
    return BackendSettings(address=p.backend_address.strip() or DEFAULT_ADDRESS,
                           key_file=bpy.path.abspath(p.key_file) if p.key_file else "",
                           start_command=p.start_command, timeout_s=float(p.timeout_s))


classes = (SCAIL_AP_preferences,)
