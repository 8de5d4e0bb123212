"""registry capability."""
