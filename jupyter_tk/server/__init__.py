"""Single-user side: jupyter_server extension (GPU stats, examples copying)."""
