"""Using a trained model: testing a checkpoint, and reading a user's digit images."""
