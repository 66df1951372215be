"""gitops-bot: the pull-request side of GitOps for a fleet of Amazon EKS clusters."""

__version__ = "0.1.0"
