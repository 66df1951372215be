"""The one test-repository builder: real git repositories built commit by commit.

``GitRepo(path, bare=True)`` is a "remote" whose branches are written with plumbing and a
temporary index (``commit_on``): what promotion and campaign tests push to and merge on.
``GitRepo(path)`` has a work tree (``commit``: write files, ``git commit``, optionally signed
with an SSH or GPG key); its ``git_dir`` is what the bot reads. ``tree_repo`` copies a folder of
files into a new repository with one commit.
"""

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

from bot.git.files import GIT_ENV

IDENTITY = {  # who commits when a test runs ``git commit`` itself
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}
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


class GitRepo:
    """A real repository: bare (a remote, branches written with plumbing) or with a work tree."""

    def __init__(self, path: Path, *, bare: bool = False) -> None:
        self.path = path
        self.bare = bare
        path.mkdir(parents=True, exist_ok=True)
        init = ["git", "init", "-q", *(["--bare"] if bare else []), "-b", "main", str(path)]
        subprocess.run(init, check=True, env=GIT_ENV, capture_output=True)
        self._clock = 1_700_000_000

    @classmethod
    def open(cls, path: Path) -> GitRepo:
        """The repository already at ``path`` (bare when it has no ``.git``), not initialised again."""
        repo = cls.__new__(cls)
        repo.path, repo.bare = path, not (path / ".git").exists()
        repo._clock = 1_700_000_000
        return repo

    @property
    def git_dir(self) -> Path:
        return self.path if self.bare else self.path / ".git"

    def git(self, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None) -> str:
        proc = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", *([] if self.bare else [f"--work-tree={self.path}"]), *args],
            input=input,
            capture_output=True,
            env={**GIT_ENV, **IDENTITY, **(env or {})},
            cwd=self.path,
            check=False,
        )
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, ["git", *args], proc.stdout, proc.stderr)
        return proc.stdout.decode(errors="replace").strip()

    def sha(self, rev: str) -> str:
        return self.git("rev-parse", "--verify", f"{rev}^{{commit}}")

    def read(self, rev: str, path: str) -> str | None:
        proc = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "blob", f"{rev}:{path}"],
            capture_output=True,
            env=GIT_ENV,
            check=False,
        )
        return proc.stdout.decode() if proc.returncode == 0 else None

    def commit_on(
        self,
        branch: str,
        files: dict[str, str | None],
        message: str,
        *,
        parents: list[str] | None = None,
        author: str = "Alice",
    ) -> str:
        """Commit ``files`` (None deletes) on top of ``branch`` (or ``parents``) and move the branch."""
        index = self.git_dir / f"index-{os.getpid()}"
        env = {"GIT_INDEX_FILE": str(index)}
        if parents is None:
            try:
                parents = [self.sha(f"refs/heads/{branch}")]
            except subprocess.CalledProcessError:
                parents = []
        if parents:
            self.git("read-tree", parents[0], env=env)
        else:
            self.git("read-tree", "--empty", env=env)
        for path, text in files.items():
            if text is None:
                self.git("update-index", "--force-remove", path, env=env)
            else:
                blob = self.git("hash-object", "-w", "--stdin", input=text.encode())
                self.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = self.git("write-tree", env=env)
        index.unlink(missing_ok=True)
        self._clock += 60
        ident = {
            "GIT_AUTHOR_NAME": author,
            "GIT_AUTHOR_EMAIL": f"{author.lower()}@example.com",
            "GIT_AUTHOR_DATE": f"{self._clock} +0000",
            "GIT_COMMITTER_NAME": "GitHub",
            "GIT_COMMITTER_EMAIL": "noreply@github.com",
            "GIT_COMMITTER_DATE": f"{self._clock} +0000",
        }
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        sha = self.git(*args, input=message.encode(), env=ident)
        self.git("update-ref", f"refs/heads/{branch}", sha)
        return sha

    def merge_pr(self, base: str, head: str, title: str, number: int) -> str:
        """Merge ``head`` into ``base`` with a merge commit, as GitHub's merge button does."""
        from bot.git.rewrite import merge

        result = merge(
            self.git_dir,
            f"refs/heads/{head}",
            f"refs/heads/{base}",
            message=f"Merge pull request #{number}\n\n{title}",
        )
        assert result.sha is not None
        self.git("update-ref", f"refs/heads/{base}", result.sha)
        return result.sha

    # --- a work tree: write files and commit them, optionally signed ---
    def write(self, files: Mapping[str, str | None]) -> None:
        write_files(self.path, files)

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
        """Write ``files`` (None deletes) into the work tree and commit everything."""
        assert not self.bare, "a bare repository takes commit_on(branch, ...)"
        self.write(files)
        self.git("add", "-A")
        newest = self.git(
            "for-each-ref", "--sort=-committerdate", "--count=1", "--format=%(committerdate:unix)"
        )
        self._clock = max(self._clock, int(newest or 0)) + 60  # each commit later than every other
        when = f"{self._clock} +0000"
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
        return self.git("rev-parse", "HEAD")

    def tree(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", f"{rev}^{{tree}}")

    def tamper(self, sha: str, old: bytes, new: bytes) -> str:
        """Rewrite commit ``sha`` replacing ``old`` with ``new`` in its object, keeping the signature."""
        raw = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "commit", sha],
            capture_output=True,
            check=True,
            env=GIT_ENV,
        ).stdout
        assert old in raw
        forged = raw.replace(old, new, 1)
        return self.git("hash-object", "-t", "commit", "-w", "--stdin", input=forged)


def write_files(root: Path, files: Mapping[str, str | None]) -> None:
    """Write (or, for None, delete) files under ``root``."""
    for rel, text in files.items():
        target = root / rel
        if text is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def tree_repo(path: Path, files: Mapping[str, str] | None = None, *, source: Path | None = None) -> GitRepo:
    """A work-tree repository at ``path`` holding ``source`` (a folder copied in) and ``files``, committed."""
    if source is not None:
        shutil.copytree(source, path, dirs_exist_ok=True)
    repo = GitRepo(path)
    repo.commit(dict(files or {}), "initial")
    return repo
