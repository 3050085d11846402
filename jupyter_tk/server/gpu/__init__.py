"""Per-server GPU statistics: one NVML sampler thread, history, kernel attribution."""
