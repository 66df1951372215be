"""Real git repositories, SSH keys and GPG keys in temporary folders for governance tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LC_ALL": "C",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
}


def run(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, input: bytes | None = None
) -> str:
    proc = subprocess.run(
        list(args), cwd=cwd, env={**BASE_ENV, **(env or {})}, input=input, capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode(errors="replace")


@dataclass(frozen=True)
class SshKey:
    email: str
    private: Path
    public_line: str  # "ssh-ed25519 AAAA..."

    def allowed_line(self, principal: str | None = None) -> str:
        return f'{principal or self.email} namespaces="git" {self.public_line}'


def make_ssh_key(folder: Path, name: str, email: str) -> SshKey:
    private = folder / name
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", email, "-f", str(private))
    pub = (folder / f"{name}.pub").read_text().split()
    return SshKey(email, private, f"{pub[0]} {pub[1]}")


@dataclass(frozen=True)
class GpgKey:
    home: Path
    email: str
    fingerprint: str

    def armored(self) -> str:
        return run(
            "gpg", "--batch", "--armor", "--export", self.fingerprint, env={"GNUPGHOME": str(self.home)}
        )


@contextmanager
def gpg_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="gpg"))  # short: gpg-agent socket paths are limited
    os.chmod(home, 0o700)
    try:
        yield home
    finally:
        subprocess.run(
            ["gpgconf", "--kill", "gpg-agent"], env={**BASE_ENV, "GNUPGHOME": str(home)}, check=False
        )
        shutil.rmtree(home, ignore_errors=True)


def make_gpg_key(home: Path, name: str, email: str) -> GpgKey:
    env = {"GNUPGHOME": str(home)}
    run(
        "gpg",
        "--batch",
        "--passphrase",
        "",
        "--quick-gen-key",
        f"{name} <{email}>",
        "ed25519",
        "sign",
        "never",
        env=env,
    )
    listing = run("gpg", "--batch", "--with-colons", "--list-keys", email, env=env)
    fpr = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
    return GpgKey(home, email, fpr)


SSH_SIG = "-----BEGIN SSH SIGNATURE-----\n...\n-----END SSH SIGNATURE-----\n"


def github_commit(
    sha: str, email: str, *, verified: bool, reason: str, signature: str | None, message: str = "change"
) -> dict[str, Any]:
    """One item of ``GET /repos/{o}/{r}/pulls/{n}/commits`` with GitHub's ``verification``."""
    return {
        "sha": sha,
        "commit": {
            "message": message,
            "author": {"email": email},
            "committer": {"email": email},
            "verification": {"verified": verified, "reason": reason, "signature": signature},
        },
    }


class Repo:
    """A work-tree repository; ``git_dir`` is its ``.git`` (what the bot reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self._tick = 0

    @property
    def git_dir(self) -> Path:
        return self.path / ".git"

    def git(self, *args: str, env: Mapping[str, str] | None = None, input: bytes | None = None) -> str:
        return run("git", *args, cwd=self.path, env=env, input=input)

    def write(self, files: Mapping[str, str | None]) -> None:
        for rel, text in files.items():
            target = self.path / rel
            if text is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def commit(
        self,
        files: Mapping[str, str | None],
        message: str = "change",
        *,
        email: str = "alice@example.com",
        name: str = "Alice",
        committer_email: str | None = None,
        committer_name: str | None = None,
        ssh: SshKey | None = None,
        gpg: GpgKey | None = None,
    ) -> str:
        self.write(files)
        self.git("add", "-A")
        self._tick += 1
        when = f"{1_700_000_000 + self._tick * 60} +0000"
        env = {
            "GIT_AUTHOR_NAME": name,
            "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": committer_name or name,
            "GIT_COMMITTER_EMAIL": committer_email or email,
            "GIT_AUTHOR_DATE": when,
            "GIT_COMMITTER_DATE": when,
        }
        args = ["commit", "-q", "--allow-empty", "-m", message]
        if ssh is not None:
            args = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={ssh.private}", *args, "-S"]
        elif gpg is not None:
            env["GNUPGHOME"] = str(gpg.home)
            args = ["-c", "gpg.format=openpgp", "-c", f"user.signingkey={gpg.fingerprint}", *args, "-S"]
        self.git(*args, env=env)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def tree(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", f"{rev}^{{tree}}").strip()

    def tamper(self, sha: str, old: bytes, new: bytes) -> str:
        """Rewrite commit ``sha`` replacing ``old`` with ``new`` in its object, keeping the signature."""
        raw = subprocess.run(
            ["git", "cat-file", "commit", sha], cwd=self.path, capture_output=True, check=True, env=BASE_ENV
        ).stdout
        assert old in raw
        forged = raw.replace(old, new, 1)
        return self.git("hash-object", "-t", "commit", "-w", "--stdin", input=forged).strip()
