"""Supply chain and provenance, the I/O side: SBOMs (syft), RO-Crates, reruns, the cache."""
