"""Model backends. No module here imports torch or transformers at module level."""
