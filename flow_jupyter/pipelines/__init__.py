"""Pipelines Flow can launch: the registry of pinned git pipelines, the bundled ones, and their schemas."""
