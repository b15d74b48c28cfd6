"""Stage 3: the networks, their batches and losses, training, checkpoints and embeddings."""
