"""Supply chain and provenance, the pure side: purls, OSV records, cache keys, wire models."""
