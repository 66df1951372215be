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
With ``trust: github`` the verdicts come from GitHub's ``commit.verification`` instead
(:func:`github_verdicts`). Commits GitHub makes itself follow ``web_flow``: ``allow``
(accepted), ``verify`` (verified like any other commit) or ``reject``. A commit is GitHub's
only when GitHub verified its web-flow signature (:func:`is_github_web_flow`: committer
``noreply@github.com`` AND ``verification.verified`` from the API, which nobody but GitHub
can obtain for that email); a committer email alone is forgeable and counts for nothing.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import re
import subprocess
import tempfile
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.domain import escape
from bot.domain.governance.globs import any_match
from bot.domain.model import CheckInput, Finding, Severity
from bot.git.files import git

DEFAULTS: dict[str, Any] = {
    "required": False,
    "trust": "github",
    "allowed_signers": ".github/allowed_signers",
    "gpg_keys": ".github/gpg-keys",
    "web_flow": "verify",
    "overrides": [],
}
WEB_FLOW_EMAIL = "noreply@github.com"
SSH_NAMESPACE = "git"
TOOL_TIMEOUT = 30
_TOOL_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "HOME": "/nonexistent"}

# Verdict statuses. ``ok`` says whether the commit passes; a problem on a commit that does
# not require a signature is reported but does not block.
VERIFIED = "verified"
UNSIGNED = "unsigned"
BAD_SIGNATURE = "bad-signature"
UNKNOWN_KEY = "unknown-key"
EMAIL_MISMATCH = "email-mismatch"
BAD_KEY = "expired-or-revoked-key"
UNSUPPORTED = "unsupported"
WEB_FLOW_ALLOWED = "web-flow-allowed"
WEB_FLOW_REJECTED = "web-flow-rejected"


def signature_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``signatures`` section with defaults filled in (empty section: all defaults)."""
    section = config.get("signatures") or {}
    return {**DEFAULTS, **section}


@dataclass(frozen=True, slots=True)
class ParsedCommit:
    """A commit object split into what git signed and the signature itself."""

    sha: str
    tree: str
    author_name: str
    author_email: str
    committer_name: str
    committer_email: str
    committer_time: int
    subject: str
    signature: str | None
    payload: bytes

    @property
    def kind(self) -> str | None:
        """``ssh``, ``gpg``, ``x509`` or None (unsigned)."""
        if self.signature is None:
            return None
        if "BEGIN SSH SIGNATURE" in self.signature:
            return "ssh"
        if "BEGIN PGP SIGNATURE" in self.signature:
            return "gpg"
        return "x509"

    @property
    def web_flow(self) -> bool:
        """True when the commit CLAIMS GitHub made it (anyone can write this committer email)."""
        return self.committer_email.lower() == WEB_FLOW_EMAIL


def is_github_web_flow(item: Mapping[str, Any]) -> bool:
    """True when GitHub itself made and signed the commit (an item of ``GET .../commits``).

    GitHub signs the commits it makes (web edits, merges in the web interface) with its
    web-flow key and reports them ``verification.verified`` with committer
    ``noreply@github.com``; GitHub verifies a signature only for an email verified on the
    signer's account, which nobody else can have for that address.
    """
    commit = item.get("commit") or {}
    committer = commit.get("committer") or {}
    verification = commit.get("verification") or {}
    return (
        str(committer.get("email", "")).lower() == WEB_FLOW_EMAIL
        and verification.get("verified") is True
        and verification.get("signature") is not None
    )


def github_web_flow_shas(items: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The shas of ``items`` that :func:`is_github_web_flow` confirms."""
    return frozenset(str(i.get("sha", "")) for i in items if is_github_web_flow(i))


_IDENT = re.compile(rb"^(?P<name>.*?) <(?P<email>[^>]*)> (?P<time>\d+) [+-]\d{4}$")


def parse_commit(sha: str, raw: bytes) -> ParsedCommit:
    """Split the raw commit object ``raw`` into its signed payload and its signature.

    The payload is the object with the ``gpgsig`` header (and its continuation lines)
    removed, byte for byte what ``git commit -S`` handed to the signing tool. The SHA-256
    transition header ``gpgsig-sha256`` is treated the same way.
    """
    header, sep, body = raw.partition(b"\n\n")
    lines = header.split(b"\n")
    kept: list[bytes] = []
    sig_lines: list[bytes] = []
    in_sig = False
    fields: dict[bytes, bytes] = {}
    for line in lines:
        if in_sig and line.startswith(b" "):
            sig_lines.append(line[1:])
            continue
        in_sig = False
        if line.startswith((b"gpgsig ", b"gpgsig-sha256 ")) and not sig_lines:
            in_sig = True
            sig_lines.append(line.split(b" ", 1)[1])
            continue
        kept.append(line)
        key, _, value = line.partition(b" ")
        fields.setdefault(key, value)
    payload = b"\n".join(kept) + sep + body

    def ident(key: bytes) -> tuple[str, str, int]:
        m = _IDENT.match(fields.get(key, b""))
        if not m:
            return "", "", 0
        return (m["name"].decode(errors="replace"), m["email"].decode(errors="replace"), int(m["time"]))

    a_name, a_email, _ = ident(b"author")
    c_name, c_email, c_time = ident(b"committer")
    subject = body.split(b"\n", 1)[0].decode(errors="replace")
    signature = b"\n".join(sig_lines).decode(errors="replace") + "\n" if sig_lines else None
    return ParsedCommit(
        sha=sha,
        tree=fields.get(b"tree", b"").decode(),
        author_name=a_name,
        author_email=a_email,
        committer_name=c_name,
        committer_email=c_email,
        committer_time=c_time,
        subject=subject,
        signature=signature,
        payload=payload,
    )


@dataclass(frozen=True, slots=True)
class CommitVerdict:
    """What the signature check says about one commit."""

    sha: str
    subject: str
    author_email: str
    committer_email: str
    kind: str | None
    status: str
    required: bool
    signer: str = ""
    message: str = ""
    hint: str = ""

    @property
    def ok(self) -> bool:
        """True when the commit passes: verified, allowed, or not required to be signed."""
        if self.status in (VERIFIED, WEB_FLOW_ALLOWED):
            return True
        if self.status == WEB_FLOW_REJECTED:
            return False
        return not self.required


# --------------------------------------------------------------------------- trust root


class TrustRootError(ValueError):
    """A path in the ``signatures`` config points outside the base tree."""


def _inside(root: Path, rel: str) -> Path:
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()):
        raise TrustRootError(f"{rel!r} points outside the repository")
    return target


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
        target = _inside(dest, path_b.decode("utf-8", errors="replace"))
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


def signature_required(settings: Mapping[str, Any], paths: Iterable[str] | None) -> bool:
    """Decide whether a commit touching ``paths`` must be signed.

    An override with ``required: true`` whose globs match any of the paths makes it
    required. When ``required`` is true by default, a commit whose paths ALL match
    overrides with ``required: false`` is exempt. ``paths=None`` means unknown (default).
    """
    default = bool(settings.get("required", False))
    overrides = settings.get("overrides") or []
    if paths is None or not overrides:
        return default
    paths = list(paths)
    for ov in overrides:
        if ov.get("required", True) and any(any_match(ov.get("paths", []), p) for p in paths):
            return True
    if default and paths:
        exempt = [ov for ov in overrides if not ov.get("required", True)]
        if exempt and all(any(any_match(ov.get("paths", []), p) for ov in exempt) for p in paths):
            return False
    return default


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

    ``web_flow_shas`` are the commits GitHub confirmed as its own (:func:`github_web_flow_shas`);
    only they follow ``web_flow``. Offline (``gitops-bot check``) there are none.

    ``trust_root`` is the BASE tree materialised on disk (see :func:`materialise_trust_root`);
    the allowed-signers file and GPG keys are read from there, never from the PR head.
    Works whatever ``trust`` says (``gitops-bot check`` always verifies locally).
    """
    settings = signature_settings(config)
    rel_allowed = str(settings["allowed_signers"])
    rel_keys = str(settings["gpg_keys"])
    allowed = _inside(trust_root, rel_allowed)
    key_dir = _inside(trust_root, rel_keys)
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


# --------------------------------------------------------------------------- trust: github

_GITHUB_REASONS = {
    "unsigned": (UNSIGNED, "the commit is not signed"),
    "unknown_key": (UNKNOWN_KEY, "signed with a key that is not registered with any GitHub account"),
    "bad_email": (EMAIL_MISMATCH, "the signing key's email does not match the committer email"),
    "unverified_email": (
        EMAIL_MISMATCH,
        "the committer email is not verified on the signer's GitHub account",
    ),
    "no_user": (EMAIL_MISMATCH, "no GitHub user has the committer email"),
    "unknown_signature_type": (UNSUPPORTED, "GitHub does not know this signature type"),
    "malformed_signature": (BAD_SIGNATURE, "the signature is malformed"),
    "invalid": (BAD_SIGNATURE, "the signature does not match the commit's content"),
    "expired_key": (BAD_KEY, "the signing key has expired"),
    "not_signing_key": (UNKNOWN_KEY, "the key is not allowed to sign"),
    "gpgverify_error": (UNSUPPORTED, "GitHub could not verify the signature right now"),
    "gpgverify_unavailable": (UNSUPPORTED, "GitHub's signature service was unavailable"),
    "bad_cert": (BAD_SIGNATURE, "the X.509 certificate is invalid"),
    "ocsp_pending": (UNSUPPORTED, "GitHub is still checking the certificate"),
}


def github_verdicts(
    commits: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
    paths_by_sha: Mapping[str, Sequence[str]] | None = None,
) -> list[CommitVerdict]:
    """Turn the items of ``GET /pulls/{n}/commits`` into verdicts using GitHub's ``verification``.

    ``paths_by_sha`` (from the local mirror) is needed only for per-path overrides.
    """
    settings = signature_settings(config)
    verdicts = []
    for item in commits:
        sha = str(item.get("sha", ""))
        commit = item.get("commit") or {}
        author = commit.get("author") or {}
        committer = commit.get("committer") or {}
        verification = commit.get("verification") or {}
        paths = (paths_by_sha or {}).get(sha) if paths_by_sha is not None else None
        required = signature_required(settings, paths)
        web_flow = is_github_web_flow(item)
        signed = verification.get("signature") is not None
        kind = None
        if signed:
            sig = str(verification.get("signature"))
            kind = "ssh" if "SSH SIGNATURE" in sig else "gpg" if "PGP SIGNATURE" in sig else "x509"
        if web_flow and settings["web_flow"] == "allow":
            status, message, hint = WEB_FLOW_ALLOWED, "made by GitHub (web flow); allowed by config", ""
        elif web_flow and settings["web_flow"] == "reject":
            status, message = WEB_FLOW_REJECTED, "made by GitHub (web flow), which this repository rejects"
            hint = "Make the change locally, sign the commit and push it."
        elif verification.get("verified"):
            status, message, hint = VERIFIED, "verified by GitHub", ""
        else:
            reason = str(verification.get("reason", "unsigned"))
            status, message = _GITHUB_REASONS.get(reason, (BAD_SIGNATURE, f"GitHub says: {reason}"))
            if str(committer.get("email", "")).lower() == WEB_FLOW_EMAIL:
                message += " (its committer email claims GitHub made it; GitHub did not sign it)"
            hint = (
                "Sign your commits with a key registered on your GitHub account (Settings → SSH and GPG "
                "keys) and commit with a verified email, then force-push."
            )
        verdicts.append(
            CommitVerdict(
                sha=sha,
                subject=str(commit.get("message", "")).split("\n", 1)[0],
                author_email=str(author.get("email", "")),
                committer_email=str(committer.get("email", "")),
                kind=kind,
                status=status,
                required=required,
                signer="GitHub" if status == VERIFIED else "",
                message=message,
                hint=hint,
            )
        )
    return verdicts


# --------------------------------------------------------------------------- outputs


def signatures_summary(verdicts: Sequence[CommitVerdict], settings: Mapping[str, Any]) -> tuple[str, str]:
    """Return (title, markdown) for the ``gitops-bot/signatures`` check run."""
    failing = [v for v in verdicts if not v.ok]
    warned = [v for v in verdicts if v.ok and v.status not in (VERIFIED, WEB_FLOW_ALLOWED, UNSIGNED)]
    n = len(verdicts)
    if failing:
        title = f"{len(failing)} of {n} commit{'s' if n != 1 else ''} fail the signature policy"
    elif not verdicts:
        title = "No commits to check"
    else:
        verified = sum(1 for v in verdicts if v.status == VERIFIED)
        title = f"Signatures OK: {verified} of {n} commit{'s' if n != 1 else ''} verified"
        if verified < n:  # the rest are web-flow commits or unsigned where signing is optional
            rest = n - verified
            title += f", {rest} need{'s' if rest == 1 else ''} no signature here"
    trust = settings.get("trust", "github")
    source = (
        "GitHub's commit verification"
        if trust == "github"
        else f"the base branch's `{settings['allowed_signers']}` and `{settings['gpg_keys']}`"
    )
    lines = [
        f"Signatures are {'required' if settings.get('required') else 'optional'} by default "
        f"(`trust: {trust}`: checked against {source}; web-flow commits: `{settings.get('web_flow')}`).",
        "",
    ]
    if verdicts:
        lines += ["| | Commit | Author | Result |", "|---|---|---|---|"]
        for v in verdicts:
            mark = "✅" if v.ok and v.status in (VERIFIED, WEB_FLOW_ALLOWED) else ("❌" if not v.ok else "⚠️")
            req = "" if v.required else " (signature optional here)"
            lines.append(
                f"| {mark} | `{v.sha[:12]}` {_md(v.subject)} | {_md(v.author_email)} "
                f"| {_md(v.message)}{req} |"
            )
    todo = [v for v in failing + warned if v.hint]
    if todo:
        lines += ["", "<details><summary>How to fix</summary>", ""]
        for v in todo:
            lines.append(f"- `{v.sha[:12]}`: {v.hint}")
        lines += ["", "</details>"]
    return title, "\n".join(lines)


def _md(text: str) -> str:
    return escape.message(text[:200], table=True)  # commit subjects and emails come from the PR


def verdict_findings(verdicts: Iterable[CommitVerdict]) -> list[Finding]:
    """Turn failing (error) and suspicious-but-optional (warning) verdicts into findings.

    Findings name the commit as their path (``commit:<sha12>``), line 1: a commit has no file.
    """
    findings = []
    for v in verdicts:
        if v.status in (VERIFIED, WEB_FLOW_ALLOWED) or (v.ok and v.status == UNSIGNED):
            continue
        findings.append(
            Finding(
                rule="signature",
                severity=Severity.ERROR if not v.ok else Severity.WARNING,
                path=f"commit:{v.sha[:12]}",
                line=1,
                message=f"commit {v.sha[:12]} ({v.subject[:60]}): {v.message}",
                hint=v.hint,
            )
        )
    return findings


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
