"""Runs one attempt of one task anywhere: stage in, run the executors, stage out, report.

:mod:`toolship.worker.worker` holds the routine (``Worker``, ``Job``, ``Reporter``);
:mod:`toolship.worker.remote` runs it on a compute node.  This package imports
nothing itself, so ``python -m toolship.worker`` starts light.
"""
