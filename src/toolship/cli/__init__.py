"""The ``toolship`` command line."""
