"""The services catalog: labelled images registered as pinned versions, run by name.

``labels.py`` reads what an image's labels say (pure), ``lower.py`` turns a run of a
service into an ordinary TES task (pure), ``images.py`` builds, inspects, pushes and
verifies images with podman and skopeo, ``trust.py`` decides which images may run,
and ``catalog.py`` registers versions in the store.
"""
