"""Ctrl-C during training (transformer/interrupt.py): the first one only asks to stop after the
step, the second stops at once, and the previous handler comes back afterwards."""
import os
import signal
import threading

import pytest

from transformer.interrupt import StopOnInterrupt


def test_first_ctrl_c_asks_second_one_stops():
    before = signal.getsignal(signal.SIGINT)
    with StopOnInterrupt() as interrupt:
        assert not interrupt.requested
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupt.requested                      # the handler ran; nothing was raised
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_outside_the_main_thread_it_changes_nothing():
    before = signal.getsignal(signal.SIGINT)
    seen = []

    def run():
        with StopOnInterrupt() as interrupt:
            seen.append(interrupt.requested)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [False] and signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("name, code", [("SIGINT", 130), ("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_and_sighup_ask_to_stop_like_ctrl_c(name, code):
    signum = getattr(signal, name)
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with StopOnInterrupt() as interrupt:
        os.kill(os.getpid(), signum)
        assert interrupt.requested and interrupt.exit_code == code and interrupt.signal_name == name
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
        assert interrupt.exit_code == code                  # the first signal names the way out
    assert {s: signal.getsignal(s) for s in before} == before


def test_while_saving_further_signals_only_ask_to_stop():
    with StopOnInterrupt() as interrupt:
        with interrupt.deferred():
            for _ in range(3):
                os.kill(os.getpid(), signal.SIGINT)       # a save would go on to its end
            with interrupt.deferred():
                os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)           # still deferred after the inner block
        assert interrupt.requested and interrupt.exit_code == 130
        with pytest.raises(KeyboardInterrupt):            # outside: a second signal stops at once again
            os.kill(os.getpid(), signal.SIGINT)
