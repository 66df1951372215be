"""The pull-request checks: :mod:`.build` runs them on a clone, :mod:`.publish` writes them to GitHub."""
