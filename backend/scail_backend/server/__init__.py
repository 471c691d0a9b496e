"""``scail-pose serve``: the pipeline behind ZeroMQ for the Blender add-on and scripts.

Modules: ``broker`` (the :class:`Server` loop), ``worker`` (runs one job at a time),
``tasks`` (what each job kind does), ``submit`` (checking submissions), ``jobs`` (job table),
``uploads`` (content-addressed upload cache), ``paths`` (roots), ``config`` (settings, key file),
``capabilities`` (what ``hello`` reports). The message format is :mod:`scail_protocol.wire`,
the vocabulary :mod:`scail_protocol.messages`, the client :mod:`scail_protocol.client`.
"""

from .broker import Server
from .config import ServerConfig, load_or_create_key

__all__ = ["Server", "ServerConfig", "load_or_create_key"]
