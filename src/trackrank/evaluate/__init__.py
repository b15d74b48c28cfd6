"""Stage 4: test-split metrics, reference rows, the report and the listening page."""
