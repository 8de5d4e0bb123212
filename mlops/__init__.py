"""mlops: GitOps, CI-native MLOps toolkit."""

__version__ = "0.1.0"
