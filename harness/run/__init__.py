"""The run floor: plans, labels, adapters, workers and the cache; it produces trajectories and judges nothing."""
