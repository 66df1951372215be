"""Local git: mirrors of repositories, materialised revisions, history rewriting without a work tree."""
