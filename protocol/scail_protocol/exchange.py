"""Runs a conversation (:mod:`scail_protocol.conversation`) against a backend client.

:class:`Exchange` is the one driver: :meth:`Exchange.run` blocks until the end (the command-line
client, headless Blender, :meth:`BackendClient.converse`), :meth:`Exchange.step` never waits
(Blender's UI calls it once per timer tick). Both hand the conversation the same replies and
events, so what is said is the same whichever way it runs.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Optional

from . import messages as M
from .conversation import NextEvent, Progress, ProgressFn, Request
from .errors import Cancelled, ProtocolError, ScailError, ServerTimeout
from .wire import RefusedMessage


class Exchange:
    """Runs one conversation against a client: blocking (:meth:`run`) or a step at a time
    (:meth:`step`, for a UI timer). Not thread-safe; one exchange at a time per client.

    After each step, ``stage``, ``done`` and ``total`` describe the progress; when ``finished``
    is set, ``result`` or ``error`` holds the outcome. ``label`` names the work in messages.

    Args:
        client: a :class:`~scail_protocol.client.BackendClient`, or None for a conversation
            that only reports progress (a local job, e.g. Blender rendering frame by frame).
        conversation: the generator (see the module docstring).
        label: what the work is called ("import", "render", ...).
        progress: optional ``progress(stage, done, total)`` called on every report.
    """

    def __init__(self, client, conversation, *, label: str = "job",
                 progress: Optional[ProgressFn] = None):
        self.client, self.label, self._progress = client, label, progress
        self.stage, self.done, self.total = "start", 0, 0
        self.finished, self.result, self.error = False, None, None
        self.job_id = None  # the server's job, once accepted or attached
        self._gen = conversation
        self._action = None  # what the conversation waits for
        self._pending = None  # (msg_id, deadline) of the request awaiting its reply
        self._reply = None
        self._events = deque()  # events of job_id not yet handed to the conversation
        self._others = deque()  # anything else that arrived meanwhile (given back at the end)
        self._job_ended = False

    # --- driving -------------------------------------------------------------------------------

    def run(self):
        """Run to the end, blocking; returns the result.

        Raises:
            ServerTimeout: the server went silent (not running, unreachable, killed).
            Cancelled, ScailError: the job was cancelled or failed.
        """
        try:
            while not self.finished:
                self.step(wait_s=self._wait_budget())
        except BaseException:  # Ctrl-C: stop here and let the conversation clean up
            self.close()
            raise
        if self.error is not None:
            raise self.error
        return self.result

    def step(self, wait_s: float = 0.0) -> None:
        """Advance as far as possible, waiting at most ``wait_s`` for the server (0: never).

        Errors end the exchange (``error``); they are not raised here.
        """
        if self.finished:
            return
        try:
            if self._action is None or isinstance(self._action, Progress):
                self._resume(None)
            self._continue(wait_done=False)  # what already arrived needs no waiting
            if not self.finished and self.client is not None and isinstance(self._action,
                                                                            Progress):
                self._resume(None)  # a report between two requests costs no extra tick
                self._continue(wait_done=False)
            if self.finished or isinstance(self._action, Progress):
                return  # a UI tick ends after a report: local work stays one item per tick
            self._receive(wait_s)
            self._continue(wait_done=True)
        except ScailError as e:
            self._fail(e)

    def cancel(self) -> None:
        """Ask for the work to stop; it finishes with a :class:`Cancelled` error.

        A job running on the server is asked to cancel (the exchange ends when the server
        confirms); anything else stops at once.
        """
        if self.finished:
            return
        if self.job_id is not None and not self._job_ended and self.client is not None:
            self._send_unanswered(M.CANCEL, {"job_id": self.job_id})
            self._set_progress("cancelling", self.done, self.total)
            return
        self._fail(Cancelled(f"{self.label} cancelled"))

    def close(self) -> None:
        """Stop at once (the conversation's cleanup runs); a running server job is left alone."""
        self.abort(Cancelled(f"{self.label} cancelled"))

    def abort(self, error: BaseException) -> None:
        """End at once with ``error`` (e.g. a UI timer caught something unexpected)."""
        self._fail(error)

    # --- internals -----------------------------------------------------------------------------

    def _wait_budget(self) -> float:
        if self._pending is not None:
            return max(0.0, self._pending[1] - time.monotonic())
        return self.client.timeout_s if self.client is not None else 0.0

    def _resume(self, value, error: Optional[BaseException] = None) -> None:
        """Send ``value`` (or throw ``error``) into the conversation and act on what it yields."""
        try:
            action = self._gen.throw(error) if error is not None else self._gen.send(value)
        except StopIteration as stop:
            self._finish(stop.value)
            return
        if isinstance(action, tuple):  # a local generator's (stage, done, total)
            action = Progress(*action)
        self._action = action
        if isinstance(action, Progress):
            self._set_progress(action.stage, action.done, action.total)
        elif isinstance(action, Request):
            msg = self.client.send(action.type, action.body, arrays=action.arrays)
            self._pending = (msg.msg_id, time.monotonic() + self.client.timeout_s)
        elif isinstance(action, NextEvent):
            self.client.watching.add(action.job_id)
        else:
            raise ProtocolError(f"a conversation yielded {action!r}, not an action")

    def _continue(self, wait_done: bool) -> None:
        """Hand over whatever the conversation waits for, as long as it has arrived; after
        reading the socket (``wait_done``), a wait past the timeout raises ServerTimeout."""
        while not self.finished:
            action = self._action
            if isinstance(action, Request):
                if self._reply is None:
                    if wait_done and time.monotonic() > self._pending[1]:
                        raise self._timeout(f"within {self.client.timeout_s:g} s")
                    return
                reply, self._reply, self._pending = self._reply, None, None
                if reply.type == M.ERROR:
                    self._resume(None, M.error_from_reply(reply.body.get("code"),
                                                          reply.body.get("message")))
                else:
                    self._resume(reply)
            elif isinstance(action, NextEvent):
                event = self._take_event(action.job_id)
                if event is None:
                    if wait_done and self.client.silent_for_s > self.client.timeout_s:
                        raise self._timeout(f"within {self.client.timeout_s:g} s while waiting "
                                            f"for job {action.job_id}")
                    return
                self._resume(event)
            else:
                return  # a Progress: the next step resumes it

    def _receive(self, wait_s: float) -> None:
        """Read what the server sent (waiting at most ``wait_s`` for the first message)."""
        while True:
            msg = self.client.receive(wait_s)
            if msg is None:
                return
            self._route(msg)
            wait_s = 0.0

    def _route(self, msg) -> None:
        client = self.client
        if self._pending is not None and msg.reply_to == self._pending[0]:
            self._reply = msg
            if msg.type == M.ACCEPTED:
                self.job_id = msg.body["job"]["id"]
                client.watching.add(self.job_id)
        elif msg.reply_to in client.abandoned:  # a reply nobody waits for any more
            client.abandoned.discard(msg.reply_to)
            if msg.type == M.ACCEPTED:  # a submission given up before the server named its job
                self._send_unanswered(M.CANCEL, {"job_id": msg.body["job"]["id"]})
        elif msg.reply_to is None and msg.job_id is not None and msg.job_id == self.job_id:
            if msg.type in (M.RESULT, M.ERROR, M.CANCELLED):
                client.watching.discard(msg.job_id)
                self._job_ended = True
            self._events.append(msg)
        elif msg.type == M.ERROR and msg.reply_to is None and msg.job_id is None:
            raise client.refused(msg.body)
        else:
            self._others.append(msg)  # another job's, or a late reply: the client keeps it

    def _take_event(self, job_id: str):
        if self.job_id != job_id:  # a new job to follow: its events may already be with the client
            self.job_id, self._job_ended = job_id, False
            self._events.extend(m for m in self._others if m.job_id == job_id)
            self._others = deque(m for m in self._others if m.job_id != job_id)
        return self._events.popleft() if self._events else None

    def _send_unanswered(self, type: str, body: dict) -> None:
        """Send a request whose reply is not waited for (the job's own events tell the rest)."""
        self.client.abandoned.add(self.client.send(type, body).msg_id)

    def _timeout(self, within: str):
        return ServerTimeout(self.client.silence_message(within))

    def _set_progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total
        if self._progress is not None:
            self._progress(stage, done, total)

    def _finish(self, result) -> None:
        self.result, self.finished, self._action = result, True, None
        self._release()

    def _fail(self, error: BaseException) -> None:
        if self.finished:
            return
        self.error, self.finished = error, True
        self._gen.close()  # the conversation's finally blocks remove partial files
        self._release()
        if isinstance(error, (ServerTimeout, RefusedMessage)) and self.client is not None:
            self.client.reconnect()  # a fresh socket: late replies cannot pass for new ones

    def _release(self) -> None:
        client = self.client
        if client is None:
            return
        if self._pending is not None:
            client.abandoned.add(self._pending[0])
            self._pending = None
        if self.job_id is not None and not self.finished_ok:
            client.watching.discard(self.job_id)
        client.hand_back([*self._others, *self._events])
        self._others.clear()
        self._events.clear()

    @property
    def finished_ok(self) -> bool:
        return self.finished and self.error is None
