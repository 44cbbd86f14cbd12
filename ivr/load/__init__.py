"""Load generation: many seeded calls through the real system, over a real broker, measured.

``world`` makes a synthetic world and its fixture file, ``mix`` reads the persona mix, ``plan``
turns a seed into each call's keys and pauses, ``drive`` plays a plan in real time, ``ledger``
runs `ivr ledger` as a process, ``metrics`` and ``procs`` measure, ``runner`` puts one run
together and ``report`` says what it found. `ivr load` (``ivr.cli.load``) is the command.
"""

from ivr.load.mix import CallKind, Mix, default_mix, load_mix
from ivr.load.report import LoadReport, Progress
from ivr.load.runner import LoadError, LoadOptions, run_load

__all__ = [
    "CallKind",
    "LoadError",
    "LoadOptions",
    "LoadReport",
    "Mix",
    "Progress",
    "default_mix",
    "load_mix",
    "run_load",
]
