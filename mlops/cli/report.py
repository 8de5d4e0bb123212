"""Report commands (`mlops report`, `mlops gate`, `mlops comment`): registered on `app` on import."""
