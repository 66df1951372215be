"""Health facts of an environment at a commit: GitHub statuses/check runs and the Kubernetes API."""
