"""Duplicates: exact digests, bit-exact batched perceptual hashes, embeddings, clusters and leak policies."""
