"""Ending a child process we started (a private Mosquitto, `ivr ledger`, `ivr relay`)."""

from __future__ import annotations

import asyncio
import signal
from typing import Final

__all__ = ["STOP_TIMEOUT", "end_process"]

#: How long a signalled child may take to exit before it is killed.
STOP_TIMEOUT: Final = 10.0


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
