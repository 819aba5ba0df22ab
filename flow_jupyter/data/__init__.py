"""Data services: storage layout, projects/samples/files, sharing, uploads, downloads (plain Python, no tornado)."""
