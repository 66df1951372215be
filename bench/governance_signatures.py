"""Benchmark: local signature verification (trust: keys) of 100 SSH and 100 GPG commits.

Run from the repository root: ``/work/venv/bin/python -m bench.governance_signatures``.
Prints commits per second for each kind; no assertions.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.domain.governance.signatures import VERIFIED
from bot.git.signatures import materialise_trust_root, verify_range
from tests.support.gitrepo import GitRepo, gpg_home, make_gpg_key, make_ssh_key

N = 100
CONFIG = {"signatures": {"required": True, "trust": "keys"}}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, gpg_home() as home:
        root = Path(tmp)
        ssh = make_ssh_key(root, "alice", "alice@example.com")
        gpg = make_gpg_key(home, "Alice", "alice@example.com")
        for kind in ("ssh", "gpg"):
            repo = GitRepo(root / kind)
            base = repo.commit(
                {
                    ".github/allowed_signers": ssh.allowed_line() + "\n",
                    ".github/gpg-keys/alice.asc": gpg.armored(),
                },
                "base",
            )
            t0 = time.perf_counter()
            for i in range(N):
                repo.commit(
                    {"f": str(i)},
                    f"c{i}",
                    ssh=ssh if kind == "ssh" else None,
                    gpg=gpg if kind == "gpg" else None,
                )
            made = time.perf_counter() - t0
            trust = materialise_trust_root(repo.git_dir, base, CONFIG, root / f"trust-{kind}")
            t0 = time.perf_counter()
            verdicts = verify_range(repo.git_dir, base, repo.head(), CONFIG, trust_root=trust)
            took = time.perf_counter() - t0
            ok = sum(v.status == VERIFIED for v in verdicts)
            print(
                f"{kind}: verified {ok}/{len(verdicts)} commits in {took:.2f} s "
                f"({len(verdicts) / took:.0f} commits/s; signing them took {made:.2f} s)"
            )


if __name__ == "__main__":
    main()
