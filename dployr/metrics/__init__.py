"""Host metrics: the psutil sampler, batched storage with rollups, Prometheus exposition."""
