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
