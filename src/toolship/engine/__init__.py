"""Scheduling decisions (pure functions) and the loop that applies them."""
