"""Visual search over the shop's own catalogue: item folders, an index per model, brute-force cosine search."""
