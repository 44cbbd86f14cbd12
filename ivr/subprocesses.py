"""The child processes we start (a private Mosquitto, `ivr ledger`, `ivr relay`): ended with us, and on demand."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["DIE_WITH_PARENT", "STOP_TIMEOUT", "end_process"]

#: How long a signalled child may take to exit before it is killed.
STOP_TIMEOUT: Final = 10.0
_PR_SET_PDEATHSIG: Final = 1


def _die_with_parent() -> None:
    """Run in the child before exec: Linux sends it SIGTERM when the process that started it dies.

    Without it, a test, ``ivr replay`` or ``ivr load`` killed mid-run (SIGKILL, or a SIGTERM it
    does not catch) leaves its broker holding a port, and its `ivr ledger` and `ivr relay` running.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


#: The ``preexec_fn`` of every long-lived child: :func:`_die_with_parent` on Linux (a ``prctl`` only,
#: which takes no lock, so it is safe between fork and exec), nothing elsewhere.
DIE_WITH_PARENT: Final[Callable[[], None] | None] = _die_with_parent if sys.platform == "linux" else None


async def end_process(
    proc: asyncio.subprocess.Process | None, sig: signal.Signals = signal.SIGTERM, *, timeout: float = STOP_TIMEOUT
) -> None:
    """Send ``sig`` and wait for the exit; SIGKILL after ``timeout`` s. Nothing to do if it has exited."""
    if proc is None or proc.returncode is not None:
        return
    proc.send_signal(sig)
    try:
        async with asyncio.timeout(timeout):
            await proc.wait()
    except TimeoutError:
        proc.kill()
        await proc.wait()
