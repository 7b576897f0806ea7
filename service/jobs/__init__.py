"""Training jobs: configuration resolution, the stored artifacts, and ``run_job`` itself."""
