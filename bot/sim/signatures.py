"""Compute a commit's ``verification`` object from its real signature, like GitHub does.

SSH signatures are checked with ``ssh-keygen -Y`` against an allowed-signers file built from the
registered keys; OpenPGP signatures with ``gpg`` in a temporary home holding the registered keys.
A valid signature by a key of user U gives ``valid`` only when the committer email is one of U's
verified emails (``unverified_email`` when it is U's but unverified, ``bad_email`` otherwise).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot.sim.gitops import CommitInfo
from bot.sim.state import User, now_iso

SSH_HEADER = "-----BEGIN SSH SIGNATURE-----"
PGP_HEADER = "-----BEGIN PGP SIGNATURE-----"
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}


def verification(info: CommitInfo, users: Iterable[User]) -> dict[str, Any]:
    """The ``verification`` object of a commit: verified, reason, signature, payload, verified_at."""
    reason, _owner = _reason(info, list(users))
    verified = reason == "valid"
    return {
        "verified": verified,
        "reason": reason,
        "signature": info.signature,
        "payload": info.payload if info.signature else None,
        "verified_at": now_iso() if verified else None,
    }


def _reason(info: CommitInfo, users: list[User]) -> tuple[str, User | None]:
    sig = info.signature
    if not sig:
        return "unsigned", None
    if SSH_HEADER in sig:
        result = _verify_ssh(sig, info.payload, users)
    elif PGP_HEADER in sig:
        result = _verify_gpg(sig, info.payload, users)
    else:
        return "unknown_signature_type", None
    if isinstance(result, str):
        return result, None
    email = info.committer.email.lower()
    emails = {e.lower(): ok for e, ok in result.emails.items()}
    if email not in emails:
        return "bad_email", result
    if not emails[email]:
        return "unverified_email", result
    return "valid", result


def _verify_ssh(sig: str, payload: str, users: list[User]) -> User | str:
    with tempfile.TemporaryDirectory(prefix="sim-ssh-") as tmp:
        sig_path = Path(tmp) / "sig"
        sig_path.write_text(sig)
        check = subprocess.run(
            ["ssh-keygen", "-Y", "check-novalidate", "-n", "git", "-s", str(sig_path)],
            input=payload.encode(),
            capture_output=True,
            env=ENV,
            check=False,
        )
        if check.returncode != 0:
            return "invalid"
        allowed = Path(tmp) / "allowed_signers"
        lines = [
            f'{u.login} namespaces="git" {key.strip()}'
            for u in users
            for key in u.ssh_signing_keys
            if key.strip()
        ]
        allowed.write_text("\n".join(lines) + "\n")
        found = subprocess.run(
            ["ssh-keygen", "-Y", "find-principals", "-f", str(allowed), "-s", str(sig_path)],
            capture_output=True,
            env=ENV,
            check=False,
        )
        principals = found.stdout.decode().split()
        if found.returncode != 0 or not principals:
            return "unknown_key"
        login = principals[0]
        ok = subprocess.run(
            ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", login, "-n", "git", "-s", str(sig_path)],
            input=payload.encode(),
            capture_output=True,
            env=ENV,
            check=False,
        )
        if ok.returncode != 0:
            return "invalid"
        return next(u for u in users if u.login == login)


def _verify_gpg(sig: str, payload: str, users: list[User]) -> User | str:
    with tempfile.TemporaryDirectory(prefix="sim-gpg-") as home:
        env = dict(ENV, GNUPGHOME=home)
        owners: dict[str, User] = {}
        for user in users:
            for key in user.gpg_keys:
                imp = subprocess.run(
                    ["gpg", "--batch", "--status-fd", "1", "--import"],
                    input=key.encode(),
                    capture_output=True,
                    env=env,
                    check=False,
                )
                for line in imp.stdout.decode().splitlines():
                    if line.startswith("[GNUPG:] IMPORT_OK"):
                        owners[line.split()[-1].upper()] = user
        sig_path = Path(home) / "sig.asc"
        data_path = Path(home) / "payload"
        sig_path.write_text(sig)
        data_path.write_bytes(payload.encode())
        proc = subprocess.run(
            ["gpg", "--batch", "--status-fd", "1", "--verify", str(sig_path), str(data_path)],
            capture_output=True,
            env=env,
            check=False,
        )
        status = proc.stdout.decode().splitlines()
        for line in status:
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "VALIDSIG":
                primary = parts[-1].upper()
                subkey = parts[2].upper()
                signer = owners.get(primary) or owners.get(subkey)
                return signer if signer else "unknown_key"
        if any(" BADSIG " in f" {line} " for line in status):
            return "invalid"
        if any("NO_PUBKEY" in line for line in status):
            return "unknown_key"
        if any("NODATA" in line or "BADARMOR" in line for line in status):
            return "malformed_signature"
        return "invalid"
