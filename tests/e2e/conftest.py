"""Not ours to collect: the vendored TES compliance suite has upstream's modules test_*.py."""

collect_ignore = ["tes-compliance"]
