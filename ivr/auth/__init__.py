"""The authorization rules R1-R11: pure decisions over directory facts, no I/O, no clock."""
