"""ivr: a support line's authorization IVR, simulated as an event-driven asyncio state machine."""

__all__ = ["__version__"]

__version__ = "0.1.0"
