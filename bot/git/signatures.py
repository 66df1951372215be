"""Verify commit signatures locally from git objects, against the base branch's own keys.

With ``trust: keys`` every commit of ``base..head`` is read with ``git cat-file commit``;
the ``gpgsig`` header is cut out (the rest is the signed payload, exactly what git signs)
and checked with local tools only, never the network:

- SSH signatures (``-----BEGIN SSH SIGNATURE-----``): ``ssh-keygen -Y`` against the
  allowed-signers file of the base branch (namespace ``git``, verify time = commit time).
- OpenPGP signatures: ``gpgv`` with a temporary keyring built from the armored public
  keys in the base branch's ``gpg_keys`` folder (no trust database, no key servers).

A good signature is not enough: the signer must be bound to the commit's author or
committer email (an allowed-signers principal, or an email in one of the key's uids).
The parsing, verdicts and findings are pure and live in :mod:`bot.domain.governance.signatures`.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.domain.governance.signatures import (
    BAD_KEY,
    BAD_SIGNATURE,
    EMAIL_MISMATCH,
    UNKNOWN_KEY,
    UNSIGNED,
    UNSUPPORTED,
    VERIFIED,
    WEB_FLOW_ALLOWED,
    WEB_FLOW_REJECTED,
    CommitVerdict,
    ParsedCommit,
    TrustRootError,
    inside,
    parse_commit,
    signature_required,
    signature_settings,
    verdict_findings,
)
from bot.domain.model import CheckInput, Finding, Severity
from bot.git.files import git

SSH_NAMESPACE = "git"
TOOL_TIMEOUT = 30
_TOOL_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent"}


def materialise_trust_root(git_dir: Path, base: str, config: Mapping[str, Any], dest: Path) -> Path:
    """Write the allowed-signers file and GPG key folder of revision ``base`` under ``dest``.

    Only those two paths are copied (blobs only; symlinks and submodules are skipped), so
    the PR head can never supply its own keys. Returns ``dest``.
    """
    settings = signature_settings(config)
    wanted = [str(settings["allowed_signers"]).strip("/"), str(settings["gpg_keys"]).strip("/")]
    out = git(git_dir, "ls-tree", "-r", "-z", "--full-tree", base, "--", *wanted)
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, path_b = entry.partition(b"\t")
        mode, otype, oid = meta.decode().split()
        if otype != "blob" or mode not in ("100644", "100755"):
            continue
        target = inside(dest, path_b.decode("utf-8", errors="replace"))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(git(git_dir, "cat-file", "blob", oid))
    return dest


# --------------------------------------------------------------------------- tools


def _run(
    args: Sequence[str], *, input: bytes | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    try:
        proc = subprocess.run(
            list(args),
            input=input,
            capture_output=True,
            env=dict(env or _TOOL_ENV),
            timeout=TOOL_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 255, f"{args[0]} could not run: {exc}"
    text = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
    return proc.returncode, text


class _SshVerifier:
    def __init__(self, allowed_signers: Path | None, workdir: Path) -> None:
        self.allowed = allowed_signers
        self.workdir = workdir

    def verify(self, commit: ParsedCommit, rel_allowed: str) -> tuple[str, str, str, str]:
        """Return (status, signer, message, hint).

        The common case costs one ``ssh-keygen -Y verify`` per candidate email (author,
        then committer); only a failure runs the diagnostics that tell a tampered commit,
        an unknown key and a signer/email mismatch apart.
        """
        assert commit.signature is not None
        sig = self.workdir / f"{commit.sha}.sig"
        sig.write_text(commit.signature)
        if self.allowed is not None:
            when = datetime.fromtimestamp(commit.committer_time, UTC).strftime("%Y%m%d%H%M%S") + "Z"
            emails = (commit.author_email, commit.committer_email)
            for email in dict.fromkeys(e for e in (*emails, *(x.lower() for x in emails)) if e):
                code, out = _run(
                    [
                        "ssh-keygen",
                        "-Y",
                        "verify",
                        "-f",
                        str(self.allowed),
                        "-I",
                        email,
                        "-n",
                        SSH_NAMESPACE,
                        "-s",
                        str(sig),
                        f"-Overify-time={when}",
                    ],
                    input=commit.payload,
                )
                if code == 0:
                    return VERIFIED, email, f"good SSH signature by {email} ({_fingerprint(out)})", ""
        code, out = _run(
            ["ssh-keygen", "-Y", "check-novalidate", "-n", SSH_NAMESPACE, "-s", str(sig)],
            input=commit.payload,
        )
        if code != 0:
            return (
                BAD_SIGNATURE,
                "",
                "the SSH signature does not match the commit's content (tampered or corrupted commit)",
                "Re-create the commit and sign it again (`git commit --amend -S --no-edit`).",
            )
        fingerprint = _fingerprint(out)
        if self.allowed is None:
            return (
                UNKNOWN_KEY,
                fingerprint,
                f"signed with SSH key {fingerprint}, but the base branch has no `{rel_allowed}`",
                f"Add an allowed-signers file at `{rel_allowed}` on the base branch.",
            )
        entries = [e for e in _allowed_entries(self.allowed) if e.fingerprint == fingerprint]
        if not entries:
            return (
                UNKNOWN_KEY,
                fingerprint,
                f"signed with SSH key {fingerprint}, which is not in `{rel_allowed}`",
                f"Add `<email> <key type> <public key>` for this key to `{rel_allowed}` "
                "on the base branch, or sign with a key that is listed there.",
            )
        listed = ", ".join(dict.fromkeys(p for e in entries for p in e.principals))
        mine = [commit.author_email.lower(), commit.committer_email.lower()]
        if any(fnmatch.fnmatchcase(m, p.lower()) for e in entries for p in e.principals for m in mine if m):
            options = "; ".join(e.options for e in entries if e.options) or "none"
            return (
                BAD_KEY,
                listed,
                f"signed with SSH key {fingerprint} of {listed}, but its options in `{rel_allowed}` "
                f"({options}) do not allow git commit signatures at the commit's time",
                f"Check `namespaces`, `valid-after` and `valid-before` for this key in `{rel_allowed}` "
                "on the base branch.",
            )
        return (
            EMAIL_MISMATCH,
            listed,
            f"signed by {listed} ({fingerprint}), which is neither the author <{commit.author_email}> "
            f"nor the committer <{commit.committer_email}>",
            "Commit with the email the key is registered for in "
            f"`{rel_allowed}` (`git config user.email`), or register the key for your email.",
        )


@dataclass(frozen=True, slots=True)
class _AllowedEntry:
    principals: tuple[str, ...]
    options: str
    fingerprint: str


_KEY_TOKEN = re.compile(r"(?:^|\s)((?:ssh|ecdsa|sk)-[A-Za-z0-9@.-]+)\s+([A-Za-z0-9+/]+={0,2})(?:\s|$)")


def _allowed_entries(path: Path) -> list[_AllowedEntry]:
    """Parse an allowed-signers file enough to name the principals of a key (for diagnostics only)."""
    entries = []
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _KEY_TOKEN.search(line)
        if not m:
            continue
        try:
            blob = base64.b64decode(m.group(2), validate=True)
        except ValueError:
            continue
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        head = line[: m.start(1)].split(None, 1)
        principals = tuple(p for p in head[0].split(",") if p) if head else ()
        entries.append(
            _AllowedEntry(principals, head[1].strip() if len(head) > 1 else "", f"SHA256:{digest}")
        )
    return entries


def _fingerprint(output: str) -> str:
    m = re.search(r"(SHA256:[A-Za-z0-9+/=]+)", output)
    return m.group(1) if m else "unknown key"


@dataclass
class _GpgKeyring:
    home: Path
    keyring: Path
    emails_by_fpr: dict[str, set[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, key_dir: Path | None, workdir: Path) -> _GpgKeyring:
        home = workdir / "gnupg"
        home.mkdir(mode=0o700)
        env = {**_TOOL_ENV, "GNUPGHOME": str(home)}
        keyring = workdir / "keyring.gpg"
        ring = cls(home, keyring)
        files = sorted(p for p in key_dir.rglob("*") if p.is_file()) if key_dir and key_dir.is_dir() else []
        for path in files:
            code, out = _run(
                ["gpg", "--batch", "--no-tty", "--quiet", "--no-autostart", "--import", str(path)], env=env
            )
            if code != 0:
                ring.problems.append(f"{path.name}: not an OpenPGP public key ({_first_line(out)})")
        proc = subprocess.run(
            ["gpg", "--batch", "--no-tty", "--no-autostart", "--export"],
            capture_output=True,
            env=env,
            timeout=TOOL_TIMEOUT,
            check=False,
        )
        keyring.write_bytes(proc.stdout)
        _, listing = _run(
            [
                "gpg",
                "--batch",
                "--no-tty",
                "--no-autostart",
                "--with-colons",
                "--fixed-list-mode",
                "--list-keys",
            ],
            env=env,
        )
        ring.emails_by_fpr = _parse_key_listing(listing)
        return ring

    def verify(self, commit: ParsedCommit, rel_keys: str) -> tuple[str, str, str, str]:
        assert commit.signature is not None
        sig = self.home.parent / f"{commit.sha}.asc"
        data = self.home.parent / f"{commit.sha}.payload"
        sig.write_text(commit.signature)
        data.write_bytes(commit.payload)
        env = {**_TOOL_ENV, "GNUPGHOME": str(self.home)}
        _, out = _run(
            ["gpgv", "--status-fd", "1", "--keyring", str(self.keyring), str(sig), str(data)], env=env
        )
        status: dict[str, list[str]] = {}
        for line in out.splitlines():
            if line.startswith("[GNUPG:] "):
                parts = line[9:].split()
                if parts:
                    status.setdefault(parts[0], parts[1:])
        if "BADSIG" in status:
            return (
                BAD_SIGNATURE,
                "",
                "the GPG signature does not match the commit's content (tampered or corrupted commit)",
                "Re-create the commit and sign it again (`git commit --amend -S --no-edit`).",
            )
        if "EXPKEYSIG" in status or "REVKEYSIG" in status:
            key = (status.get("EXPKEYSIG") or status.get("REVKEYSIG") or ["?"])[0]
            return (
                BAD_KEY,
                key,
                f"signed with GPG key {key}, which is expired or revoked",
                f"Sign with a current key and update its public key in `{rel_keys}`.",
            )
        if "VALIDSIG" not in status:
            key = (status.get("NO_PUBKEY") or status.get("ERRSIG") or ["unknown"])[0]
            return (
                UNKNOWN_KEY,
                key,
                f"signed with GPG key {key}, which is not in `{rel_keys}`",
                f"Add the armored public key (`gpg --armor --export {key}`) to `{rel_keys}` "
                "on the base branch.",
            )
        fields = status["VALIDSIG"]
        primary = fields[9] if len(fields) > 9 else fields[0]
        emails = self.emails_by_fpr.get(primary, set()) | self.emails_by_fpr.get(fields[0], set())
        for email in (commit.author_email, commit.committer_email):
            if email and email.lower() in emails:
                return VERIFIED, email, f"good GPG signature by {email} (key {primary[-16:]})", ""
        listed = ", ".join(sorted(emails)) or "no email"
        return (
            EMAIL_MISMATCH,
            listed,
            f"signed with GPG key {primary[-16:]} ({listed}), which belongs to neither the author "
            f"<{commit.author_email}> nor the committer <{commit.committer_email}>",
            "Commit with an email that is a uid of your key, or add that email as a uid and re-export "
            "the key "
            f"into `{rel_keys}`.",
        )


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "no output")


def _parse_key_listing(listing: str) -> dict[str, set[str]]:
    """Map every primary and subkey fingerprint to the emails of the primary key's valid uids."""
    result: dict[str, set[str]] = {}
    fprs: list[str] = []
    emails: set[str] = set()
    expect_fpr = False

    def flush() -> None:
        for f in fprs:
            result[f] = set(emails)

    for line in listing.splitlines():
        cols = line.split(":")
        kind = cols[0]
        if kind == "pub":
            flush()
            fprs, emails = [], set()
            expect_fpr = True
        elif kind == "sub":
            expect_fpr = True
        elif kind == "fpr" and expect_fpr and len(cols) > 9:
            fprs.append(cols[9])
            expect_fpr = False
        elif kind == "uid" and len(cols) > 9 and cols[1] not in ("r", "e"):
            uid = cols[9].replace("\\x3a", ":")
            m = re.search(r"<([^>]+)>", uid)
            addr = m.group(1) if m else uid if "@" in uid else ""
            if addr:
                emails.add(addr.strip().lower())
    flush()
    return result


# --------------------------------------------------------------------------- range


def commit_paths(git_dir: Path, sha: str) -> list[str]:
    """Return the paths commit ``sha`` changes (against each parent for merges; all files for a root)."""
    out = git(git_dir, "diff-tree", "--no-commit-id", "--name-only", "-r", "-z", "--root", "-m", sha)
    return sorted({p for p in out.decode("utf-8", errors="replace").split("\0") if p})


def list_range(git_dir: Path, base: str, head: str) -> list[str]:
    """Return the commits of ``base..head``, oldest first."""
    out = git(git_dir, "rev-list", "--reverse", f"{base}..{head}")
    return out.decode().split()


def verify_range(
    git_dir: Path,
    base: str,
    head: str,
    config: Mapping[str, Any],
    *,
    trust_root: Path,
    web_flow_shas: Collection[str] = frozenset(),
) -> list[CommitVerdict]:
    """Verify every commit of ``base..head`` locally, oldest first.

    ``trust_root`` is the BASE tree materialised on disk (see :func:`materialise_trust_root`);
    the allowed-signers file and GPG keys are read from there, never from the PR head.
    ``web_flow_shas`` are the commits GitHub confirmed as its own (:func:`github_web_flow_shas`);
    only they follow ``web_flow``. Offline (``gitops-bot check``) there are none.

    Works whatever ``trust`` says (``gitops-bot check`` always verifies locally).
    """
    settings = signature_settings(config)
    rel_allowed = str(settings["allowed_signers"])
    rel_keys = str(settings["gpg_keys"])
    allowed = inside(trust_root, rel_allowed)
    key_dir = inside(trust_root, rel_keys)
    shas = list_range(git_dir, base, head)
    verdicts: list[CommitVerdict] = []
    with tempfile.TemporaryDirectory(prefix="gitops-bot-sig-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        ssh = _SshVerifier(allowed if allowed.is_file() else None, work)
        gpg: _GpgKeyring | None = None
        for sha in shas:
            commit = parse_commit(sha, git(git_dir, "cat-file", "commit", sha))
            paths = commit_paths(git_dir, sha) if settings.get("overrides") else None
            required = signature_required(settings, paths)
            if sha in web_flow_shas and commit.web_flow and settings["web_flow"] != "verify":
                if settings["web_flow"] == "allow":
                    result = (WEB_FLOW_ALLOWED, "GitHub", "made by GitHub (web flow); allowed by config", "")
                else:
                    result = (
                        WEB_FLOW_REJECTED,
                        "GitHub",
                        "made by GitHub in the web interface (web flow), which this repository rejects",
                        "Make the change locally, sign the commit and push it.",
                    )
            elif commit.kind is None:
                result = (
                    UNSIGNED,
                    "",
                    "the commit is not signed"
                    + (
                        " (its committer email claims GitHub made it; GitHub did not sign it)"
                        if commit.web_flow
                        else ""
                    ),
                    "Sign it: `git commit --amend -S --no-edit` (or `git rebase --exec 'git commit --amend "
                    "-S --no-edit' <base>` for several commits), then force-push.",
                )
            elif commit.kind == "ssh":
                result = ssh.verify(commit, rel_allowed)
            elif commit.kind == "gpg":
                if gpg is None:
                    gpg = _GpgKeyring.build(key_dir, work)
                result = gpg.verify(commit, rel_keys)
            else:
                result = (
                    UNSUPPORTED,
                    "",
                    "the commit carries an X.509 (S/MIME) signature, which trust: keys cannot verify",
                    "Sign with an SSH or GPG key listed on the base branch.",
                )
            status, signer, message, hint = result
            verdicts.append(
                CommitVerdict(
                    sha=sha,
                    subject=commit.subject,
                    author_email=commit.author_email,
                    committer_email=commit.committer_email,
                    kind=commit.kind,
                    status=status,
                    required=required,
                    signer=signer,
                    message=message,
                    hint=hint,
                )
            )
    return verdicts


def signature_checker(check: CheckInput) -> list[Finding]:
    """Verify the commits of ``base_sha..head_sha`` with ``trust: keys`` (offline ``gitops-bot check``).

    Returns [] when there is no git range or no ``signatures`` section. Keys always come
    from ``check.base_dir`` (the base tree), whatever the head contains. With
    ``trust: github`` the keys are still checked locally, so a team can try its key list
    before switching.
    """
    if check.git_dir is None or not check.base_sha or not check.head_sha:
        return []
    if "signatures" not in check.config:
        return []
    try:
        verdicts = verify_range(
            check.git_dir, check.base_sha, check.head_sha, check.config, trust_root=check.base_dir
        )
    except TrustRootError as exc:
        return [
            Finding(
                "signature",
                Severity.ERROR,
                ".github/gitops-bot.yml",
                1,
                f"signatures: {exc}",
                "Point `allowed_signers` and `gpg_keys` at paths inside the repository.",
            )
        ]
    return verdict_findings(verdicts)
