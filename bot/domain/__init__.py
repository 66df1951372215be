"""Pure domain code: facts in, decisions out. No network, no GitHub client, no AWS, no Kubernetes API."""
