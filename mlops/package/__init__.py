"""The model package: manifest, interface, golden records and reference profile, written for any model."""
