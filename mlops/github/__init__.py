"""github capability."""
