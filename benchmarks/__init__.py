"""raymesh's benchmarks; run with ``python -m benchmarks``. Nothing imports this package."""
