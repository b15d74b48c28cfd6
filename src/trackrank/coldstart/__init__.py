"""Stage 5: the cold-start index over the whole catalog, recommendations and the HTTP service."""
