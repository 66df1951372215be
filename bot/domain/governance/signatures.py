"""Commit signatures: the parsed commit, the verdicts and what they mean for a pull request.

The verification itself runs tools (``ssh-keygen``, ``gpgv``) and reads git objects, so it
lives in :mod:`bot.git.signatures`; this module keeps the pure parts it and ``trust: github``
share (parsing the signed payload, per-path requirements, verdicts, summaries, findings).

With ``trust: keys`` :mod:`bot.git.signatures` checks every commit of ``base..head`` against
the base branch's own keys (how, and what binds a signer to a commit, is described there).
With ``trust: github`` the verdicts come from GitHub's ``commit.verification`` instead
(:func:`github_verdicts`). Commits GitHub makes itself follow ``web_flow``: ``allow``
(accepted), ``verify`` (verified like any other commit) or ``reject``. A commit is GitHub's
only when GitHub verified its web-flow signature (:func:`is_github_web_flow`: committer
``noreply@github.com`` AND ``verification.verified`` from the API, which nobody but GitHub
can obtain for that email); a committer email alone is forgeable and counts for nothing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.domain import escape
from bot.domain.governance.globs import any_match
from bot.domain.model import Finding, Severity

DEFAULTS: dict[str, Any] = {
    "required": False,
    "trust": "github",
    "allowed_signers": ".github/allowed_signers",
    "gpg_keys": ".github/gpg-keys",
    "web_flow": "verify",
    "overrides": [],
}
WEB_FLOW_EMAIL = "noreply@github.com"

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
BOT_MADE = "made-by-the-bot"
PASSING = (VERIFIED, WEB_FLOW_ALLOWED, BOT_MADE)  # statuses that pass whether or not a signature is required


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
        if self.status in PASSING:
            return True
        if self.status == WEB_FLOW_REJECTED:
            return False
        return not self.required


# --------------------------------------------------------------------------- trust root


class TrustRootError(ValueError):
    """A path in the ``signatures`` config points outside the base tree."""


def inside(root: Path, rel: str) -> Path:
    """Return ``root/rel`` resolved; raise TrustRootError when it points outside ``root``."""
    target = (root / rel).resolve()
    if not target.is_relative_to(root.resolve()):
        raise TrustRootError(f"{rel!r} points outside the repository")
    return target


# --------------------------------------------------------------------------- range


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


def with_bot_made(verdicts: Sequence[CommitVerdict], made: Collection[str]) -> list[CommitVerdict]:
    """``verdicts`` with the commits the bot created itself (by its own record) accepted as its own.

    The bot makes commits for promotions, rollbacks and upgrade steps from content that was
    already reviewed or that it generated; it records each sha in its store before pushing, so
    a commit in ``made`` is exactly what the bot wrote. Every other commit keeps its verdict.
    """
    return [
        replace(
            v,
            status=BOT_MADE,
            signer="gitops-bot",
            message="made by gitops-bot (recorded in its store when it pushed)",
            hint="",
        )
        if v.sha in made
        else v
        for v in verdicts
    ]


# --------------------------------------------------------------------------- outputs


def signatures_summary(verdicts: Sequence[CommitVerdict], settings: Mapping[str, Any]) -> tuple[str, str]:
    """Return (title, markdown) for the ``gitops-bot/signatures`` check run."""
    failing = [v for v in verdicts if not v.ok]
    warned = [v for v in verdicts if v.ok and v.status not in (*PASSING, UNSIGNED)]
    n = len(verdicts)
    if failing:
        title = f"{len(failing)} of {n} commit{'s' if n != 1 else ''} fail the signature policy"
    elif not verdicts:
        title = "No commits to check"
    else:
        verified = sum(1 for v in verdicts if v.status == VERIFIED)
        bot = sum(1 for v in verdicts if v.status == BOT_MADE)
        title = f"Signatures OK: {verified} of {n} commit{'s' if n != 1 else ''} verified"
        if bot:
            counts = [f"{verified} verified"] if verified else []
            title = f"Signatures OK: {', '.join([*counts, f'{bot} made by gitops-bot'])}"
            verified += bot
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
            mark = "✅" if v.ok and v.status in PASSING else ("❌" if not v.ok else "⚠️")
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
        if v.status in PASSING or (v.ok and v.status == UNSIGNED):
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
