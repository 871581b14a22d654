"""`ganzoo report`: a run's curves and samples in one HTML page (`run_report`), a sweep's jobs in one
table with plots (`sweep_report`). Reads only what runs write (stats.jsonl, metrics*.json,
samples/, .hydra/, job_status.json); plotting needs matplotlib, the `ganzoo[report]` extra."""
