"""The known causes of a divergence, one module per family, and their registry (``registry.CAUSES``)."""
