"""Scenario replay: the telephony team's scripted calls, run and checked against expectations."""
