"""Stage 2: the oracle S, its rankings, the mined triplets, and ranking metrics."""
