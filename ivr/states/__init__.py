"""The call flow: states, triggers and prompts declared as tables, and the model of one call."""
