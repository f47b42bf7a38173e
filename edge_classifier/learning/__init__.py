"""On-device learning: classes taught from a few photos, recognised by nearest class mean over embeddings."""
