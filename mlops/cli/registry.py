"""Registry commands (`mlops promote`, `mlops rollback`, `mlops registry`): registered on `app` on import."""
