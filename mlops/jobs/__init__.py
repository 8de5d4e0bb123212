"""Jobs: the workflows the CLI runs, composed from the capabilities (stages, report, registry, github)."""
