"""Datasets in their canonical layouts (DESIGN.md ▶ Datasets): loaders, tiny generators, manifests."""
