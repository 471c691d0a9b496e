"""SIGTERM/SIGHUP as Ctrl-C (scail_backend.signals), in-process: raised once in the main thread,
held during a critical section, raised again when a library swallowed the first raise."""

from __future__ import annotations

import os
import signal

import pytest

from scail_backend import signals
from scail_backend.progress import TqdmProgress

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def _kill_self(signum=signal.SIGTERM):
    os.kill(os.getpid(), signum)
    for _ in range(1000):  # the handler runs between bytecodes, within a few of them
        pass


def test_sigterm_raises_terminated_with_its_exit_code_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(signals.Terminated) as info:
        with signals.stop_on_signals():
            _kill_self()
    assert isinstance(info.value, KeyboardInterrupt)
    assert signals.exit_code(info.value) == 143 and signals.describe(info.value) == \
        "stopped by SIGTERM"
    assert signals.exit_code(KeyboardInterrupt()) == 130
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_during_cleanup_does_not_interrupt_it():
    cleaned = []
    with pytest.raises(signals.Terminated):
        with signals.stop_on_signals():
            try:
                _kill_self()
            finally:
                _kill_self(signal.SIGHUP)  # ignored: the cleanup below still runs
                cleaned.append(True)
    assert cleaned == [True]


def test_a_signal_in_a_deferred_block_raises_when_the_block_ends():
    steps = []
    with pytest.raises(signals.Terminated):
        with signals.stop_on_signals():
            with signals.deferred():
                _kill_self()
                steps.append("rest of the critical section")
            steps.append("after the block")  # not reached
    assert steps == ["rest of the critical section"]


def test_a_swallowed_raise_comes_back_at_the_next_progress_report():
    progress = TqdmProgress(enabled=False)
    with pytest.raises(signals.Terminated):
        with signals.stop_on_signals():
            try:  # a library callback that prints exceptions and carries on
                _kill_self()
            except KeyboardInterrupt:
                pass
            progress("render", 1, 10)
    progress("render", 2, 10)  # outside the block: nothing pending any more


def test_ctrl_c_is_held_in_a_deferred_block_too_and_stays_a_plain_interrupt():
    with pytest.raises(KeyboardInterrupt) as info:
        with signals.stop_on_signals():
            with signals.deferred():
                _kill_self(signal.SIGINT)
    assert not isinstance(info.value, signals.Terminated)
    assert signals.exit_code(info.value) == 130 and signals.describe(info.value) == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
