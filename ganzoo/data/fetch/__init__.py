"""Downloads: the manifest of URLs and hashes, resumable verified fetches, safe archive extraction."""
