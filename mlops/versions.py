"""SemVer for model versions (`vX.Y.Z[-pre][+build]`): the one parser and the one precedence order."""
