"""Commit signatures verified locally: real ssh-keygen and gpg signatures on real commits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.domain.governance import signatures as sig
from bot.domain.model import CheckInput, Severity
from bot.git import signatures as gitsig
from tests.support.gitrepo import (
    SSH_SIG,
    GitRepo,
    GpgKey,
    SshKey,
    github_commit,
    gpg_home,
    make_gpg_key,
    make_ssh_key,
)


@dataclass
class Keys:
    alice_ssh: SshKey
    bob_ssh: SshKey
    mallory_ssh: SshKey
    alice_gpg: GpgKey
    carol_gpg: GpgKey
    mallory_gpg: GpgKey


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    folder = tmp_path_factory.mktemp("keys")
    with gpg_home() as home:
        yield Keys(
            alice_ssh=make_ssh_key(folder, "alice", "alice@example.com"),
            bob_ssh=make_ssh_key(folder, "bob", "bob@example.com"),
            mallory_ssh=make_ssh_key(folder, "mallory", "mallory@example.com"),
            alice_gpg=make_gpg_key(home, "Alice", "alice@example.com"),
            carol_gpg=make_gpg_key(home, "Carol", "carol@example.com"),
            mallory_gpg=make_gpg_key(home, "Mallory", "mallory@example.com"),
        )


CONFIG = {"version": 1, "signatures": {"required": True, "trust": "keys"}}


def base_repo(tmp_path: Path, keys: Keys) -> tuple[GitRepo, str]:
    repo = GitRepo(tmp_path / "repo")
    base = repo.commit(
        {
            ".github/allowed_signers": "\n".join(
                [keys.alice_ssh.allowed_line(), keys.bob_ssh.allowed_line(), "# comment line", ""]
            ),
            ".github/gpg-keys/alice.asc": keys.alice_gpg.armored(),
            ".github/gpg-keys/carol.asc": keys.carol_gpg.armored(),
            "clusters/dev/a.yaml": "a: 1\n",
        },
        "base",
        ssh=keys.alice_ssh,
    )
    repo.git("checkout", "-q", "-b", "pr")
    return repo, base


def verify(
    repo: GitRepo, base: str, tmp_path: Path, config: dict[str, object] = CONFIG
) -> list[sig.CommitVerdict]:
    root = gitsig.materialise_trust_root(repo.git_dir, base, config, tmp_path / "trust")
    return gitsig.verify_range(repo.git_dir, base, repo.head(), config, trust_root=root)


CASES = [
    # id, signer attribute (or None), author email, committer email, expected status
    ("ssh-valid", "alice_ssh", "alice@example.com", None, sig.VERIFIED),
    ("ssh-key-not-allowed", "mallory_ssh", "mallory@example.com", None, sig.UNKNOWN_KEY),
    ("ssh-signer-not-author", "bob_ssh", "alice@example.com", None, sig.EMAIL_MISMATCH),
    ("ssh-email-case-insensitive", "alice_ssh", "Alice@Example.COM", None, sig.VERIFIED),
    ("gpg-email-case-insensitive", "alice_gpg", "Alice@Example.COM", None, sig.VERIFIED),
    ("ssh-committer-binds", "bob_ssh", "alice@example.com", "bob@example.com", sig.VERIFIED),
    ("gpg-valid", "alice_gpg", "alice@example.com", None, sig.VERIFIED),
    ("gpg-key-not-in-folder", "mallory_gpg", "mallory@example.com", None, sig.UNKNOWN_KEY),
    ("gpg-signer-not-author", "carol_gpg", "alice@example.com", None, sig.EMAIL_MISMATCH),
    ("unsigned", None, "alice@example.com", None, sig.UNSIGNED),
]


@pytest.mark.parametrize(
    ("signer", "author", "committer", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_verdict_per_signature(
    tmp_path: Path, keys: Keys, signer: str | None, author: str, committer: str | None, expected: str
) -> None:
    repo, base = base_repo(tmp_path, keys)
    key = getattr(keys, signer) if signer else None
    repo.commit(
        {"clusters/dev/b.yaml": "b: 1\n"},
        "add b",
        email=author,
        committer_email=committer,
        ssh=key if isinstance(key, SshKey) else None,
        gpg=key if isinstance(key, GpgKey) else None,
    )
    [verdict] = verify(repo, base, tmp_path)
    assert verdict.status == expected, verdict.message
    assert verdict.ok is (expected == sig.VERIFIED)
    assert verdict.message
    if not verdict.ok:
        assert verdict.hint


@pytest.mark.parametrize("signer", ["alice_ssh", "alice_gpg"])
def test_tampered_commit_keeps_signature_but_fails(tmp_path: Path, keys: Keys, signer: str) -> None:
    repo, base = base_repo(tmp_path, keys)
    key = getattr(keys, signer)
    good = repo.commit(
        {"clusters/dev/b.yaml": "b: 1\n"},
        "add b",
        ssh=key if isinstance(key, SshKey) else None,
        gpg=key if isinstance(key, GpgKey) else None,
    )
    forged = repo.tamper(good, b"add b", b"add c")
    assert forged != good
    repo.git("update-ref", "refs/heads/pr", forged)
    [verdict] = verify(repo, base, tmp_path)
    assert verdict.sha == forged
    assert verdict.status == sig.BAD_SIGNATURE
    assert "tampered" in verdict.message
    assert not verdict.ok


def test_keys_come_from_base_not_from_the_pr(tmp_path: Path, keys: Keys) -> None:
    repo, base = base_repo(tmp_path, keys)
    allowed = (repo.path / ".github/allowed_signers").read_text()
    repo.commit(
        {".github/allowed_signers": allowed + keys.mallory_ssh.allowed_line() + "\n"},
        "let me in",
        email="mallory@example.com",
        ssh=keys.mallory_ssh,
    )
    [verdict] = verify(repo, base, tmp_path)
    assert verdict.status == sig.UNKNOWN_KEY


def test_every_commit_of_the_range_is_checked(tmp_path: Path, keys: Keys) -> None:
    repo, base = base_repo(tmp_path, keys)
    first = repo.commit({"x": "1"}, "one", ssh=keys.alice_ssh)
    second = repo.commit({"x": "2"}, "two")
    third = repo.commit({"x": "3"}, "three", gpg=keys.alice_gpg)
    verdicts = verify(repo, base, tmp_path)
    assert [(v.sha, v.status) for v in verdicts] == [
        (first, sig.VERIFIED),
        (second, sig.UNSIGNED),
        (third, sig.VERIFIED),
    ]


@pytest.mark.parametrize(
    ("web_flow", "status", "ok"),
    [
        ("allow", sig.WEB_FLOW_ALLOWED, True),
        ("reject", sig.WEB_FLOW_REJECTED, False),
        ("verify", sig.UNSIGNED, False),
    ],
)
def test_web_flow_commits_follow_config(
    tmp_path: Path, keys: Keys, web_flow: str, status: str, ok: bool
) -> None:
    repo, base = base_repo(tmp_path, keys)
    sha = repo.commit(
        {"x": "1"}, "Merge branch main", committer_email="noreply@github.com", committer_name="GitHub"
    )
    config = {"signatures": {"required": True, "trust": "keys", "web_flow": web_flow}}
    root = gitsig.materialise_trust_root(repo.git_dir, base, config, tmp_path / "trust")
    # GitHub verified its web-flow signature (the handler learns this from the API)
    confirmed = sig.github_web_flow_shas([web_flow_item(sha, verified=True)])
    [verdict] = gitsig.verify_range(repo.git_dir, base, sha, config, trust_root=root, web_flow_shas=confirmed)
    assert (verdict.status, verdict.ok) == (status, ok)
    # The same committer email without GitHub's verification is a forgery: an unsigned commit.
    forged = sig.github_web_flow_shas([web_flow_item(sha, verified=False)])
    [verdict] = gitsig.verify_range(repo.git_dir, base, sha, config, trust_root=root, web_flow_shas=forged)
    assert (verdict.status, verdict.ok) == (sig.UNSIGNED, False)
    assert "claims GitHub made it" in verdict.message


def web_flow_item(sha: str, *, verified: bool) -> dict[str, object]:
    item = github_commit(
        sha,
        "noreply@github.com",
        verified=verified,
        reason="valid" if verified else "unsigned",
        signature="-----BEGIN PGP SIGNATURE-----\n...\n-----END PGP SIGNATURE-----" if verified else None,
    )
    return item


@pytest.mark.parametrize("web_flow", ["allow", "reject"])
def test_trust_github_web_flow_needs_githubs_verification(web_flow: str) -> None:
    config = {"signatures": {"required": True, "trust": "github", "web_flow": web_flow}}
    real, forged = web_flow_item("a" * 40, verified=True), web_flow_item("b" * 40, verified=False)
    by_sha = {v.sha: v for v in sig.github_verdicts([real, forged], config)}
    expected = sig.WEB_FLOW_ALLOWED if web_flow == "allow" else sig.WEB_FLOW_REJECTED
    assert by_sha["a" * 40].status == expected
    assert (by_sha["b" * 40].status, by_sha["b" * 40].ok) == (sig.UNSIGNED, False)


def test_per_path_override_requires_signature_for_prod_only(tmp_path: Path, keys: Keys) -> None:
    repo, base = base_repo(tmp_path, keys)
    dev = repo.commit({"clusters/dev/b.yaml": "b: 2\n"}, "dev change")
    prod = repo.commit({"clusters/prod/b.yaml": "b: 2\n"}, "prod change")
    config = {
        "signatures": {
            "required": False,
            "trust": "keys",
            "overrides": [{"paths": ["clusters/prod/**"], "required": True}],
        }
    }
    verdicts = {v.sha: v for v in verify(repo, base, tmp_path, config)}
    assert (verdicts[dev].required, verdicts[dev].ok) == (False, True)
    assert (verdicts[prod].required, verdicts[prod].ok) == (True, False)


def test_override_can_exempt_docs_when_required_by_default() -> None:
    settings = sig.signature_settings(
        {"signatures": {"required": True, "overrides": [{"paths": ["docs/**"], "required": False}]}}
    )
    assert sig.signature_required(settings, ["docs/a.md"]) is False
    assert sig.signature_required(settings, ["docs/a.md", "clusters/prod/x.yaml"]) is True
    assert sig.signature_required(settings, None) is True


def test_missing_allowed_signers_says_where_to_add_it(tmp_path: Path, keys: Keys) -> None:
    repo = GitRepo(tmp_path / "repo")
    base = repo.commit({"a": "1"}, "base")
    repo.commit({"a": "2"}, "signed", ssh=keys.alice_ssh)
    [verdict] = verify(repo, base, tmp_path)
    assert verdict.status == sig.UNKNOWN_KEY
    assert ".github/allowed_signers" in verdict.hint


def test_broken_gpg_key_file_is_skipped_not_fatal(tmp_path: Path, keys: Keys) -> None:
    repo, _ = base_repo(tmp_path, keys)
    repo.git("checkout", "-q", "main")
    base = repo.commit({".github/gpg-keys/junk.asc": "not a key\n"}, "junk key")
    repo.git("checkout", "-q", "-B", "pr")
    repo.commit({"x": "1"}, "gpg", gpg=keys.alice_gpg)
    [verdict] = verify(repo, base, tmp_path)
    assert verdict.status == sig.VERIFIED


def test_trust_paths_cannot_escape_the_repository(tmp_path: Path, keys: Keys) -> None:
    repo, base = base_repo(tmp_path, keys)
    repo.commit({"x": "1"}, "one", ssh=keys.alice_ssh)
    config = {"signatures": {"trust": "keys", "allowed_signers": "../../etc/passwd"}}
    check = CheckInput(
        base_dir=tmp_path / "trust",
        head_dir=repo.path,
        config=config,
        git_dir=repo.git_dir,
        base_sha=base,
        head_sha=repo.head(),
    )
    (tmp_path / "trust").mkdir()
    [finding] = gitsig.signature_checker(check)
    assert finding.severity is Severity.ERROR
    assert "outside the repository" in finding.message


def test_parse_commit_payload_is_what_git_signed(tmp_path: Path, keys: Keys) -> None:
    repo, _ = base_repo(tmp_path, keys)
    sha = repo.commit({"x": "1"}, "subject line\n\nbody", ssh=keys.alice_ssh)
    raw = repo.git("cat-file", "commit", sha).encode()
    parsed = sig.parse_commit(sha, raw)
    assert parsed.kind == "ssh"
    assert b"gpgsig" not in parsed.payload
    assert parsed.payload.startswith(b"tree ")
    assert parsed.subject == "subject line"
    assert parsed.tree == repo.tree(sha)
    assert (parsed.author_email, parsed.committer_email) == ("alice@example.com", "alice@example.com")


def test_signature_checker_findings(tmp_path: Path, keys: Keys) -> None:
    repo, base = base_repo(tmp_path, keys)
    repo.commit({"x": "1"}, "good", ssh=keys.alice_ssh)
    bad = repo.commit({"x": "2"}, "unsigned one")
    trust = gitsig.materialise_trust_root(repo.git_dir, base, CONFIG, tmp_path / "trust")
    check = CheckInput(
        base_dir=trust, head_dir=repo.path, config=CONFIG, git_dir=repo.git_dir, base_sha=base, head_sha=bad
    )
    [finding] = gitsig.signature_checker(check)
    assert finding.rule == "signature"
    assert finding.path == f"commit:{bad[:12]}"
    assert "not signed" in finding.message and finding.hint
    assert (
        gitsig.signature_checker(
            CheckInput(trust, repo.path, {"version": 1}, (), (), repo.git_dir, base, bad)
        )
        == []
    )
    assert gitsig.signature_checker(CheckInput(trust, repo.path, CONFIG)) == []


def test_github_verdicts_from_list_commits() -> None:
    commits = [
        github_commit(
            "a" * 40, "alice@example.com", verified=True, reason="valid", signature=SSH_SIG, message="ok"
        ),
        github_commit(
            "b" * 40, "bob@example.com", verified=False, reason="unsigned", signature=None, message="nope"
        ),
    ]
    ok, bad = sig.github_verdicts(commits, {"signatures": {"required": True}})
    assert (ok.status, ok.ok, ok.kind) == (sig.VERIFIED, True, "ssh")
    assert (bad.status, bad.ok) == (sig.UNSIGNED, False)
    title, text = sig.signatures_summary(
        [ok, bad], sig.signature_settings({"signatures": {"required": True}})
    )
    assert title == "1 of 2 commits fail the signature policy"
    assert "| ❌ | `bbbbbbbbbbbb` nope |" in text
    assert "<details><summary>How to fix</summary>" in text


def test_commits_the_bot_recorded_making_pass_and_no_others() -> None:
    commits = [
        github_commit(
            "a" * 40,
            "gitops-bot@users.noreply.github.com",
            verified=False,
            reason="unsigned",
            signature=None,
            message="Promote #1",
        ),
        github_commit(
            "b" * 40, "mallory@example.com", verified=False, reason="unsigned", signature=None, message="more"
        ),
    ]
    settings = {"signatures": {"required": True}}
    verdicts = sig.with_bot_made(sig.github_verdicts(commits, settings), {"a" * 40, "c" * 40})
    assert [(v.status, v.ok) for v in verdicts] == [(sig.BOT_MADE, True), (sig.UNSIGNED, False)]
    title, text = sig.signatures_summary(verdicts, sig.signature_settings(settings))
    assert title == "1 of 2 commits fail the signature policy"
    assert "| ✅ | `aaaaaaaaaaaa` Promote" in text and "made by gitops-bot" in text
    assert sig.verdict_findings(verdicts)[0].path == "commit:bbbbbbbbbbbb"
    title, _ = sig.signatures_summary(verdicts[:1], sig.signature_settings(settings))
    assert title == "Signatures OK: 1 made by gitops-bot"


def test_ssh_key_outside_its_validity_window_is_explained(tmp_path: Path, keys: Keys) -> None:
    repo = GitRepo(tmp_path / "repo")
    line = f'alice@example.com namespaces="git",valid-before="20200101" {keys.alice_ssh.public_line}\n'
    base = repo.commit({".github/allowed_signers": line}, "base")
    repo.commit({"x": "1"}, "late", ssh=keys.alice_ssh)  # commit time is in 2023
    [verdict] = verify(repo, base, tmp_path)
    assert verdict.status == sig.BAD_KEY
    assert "valid-before" in verdict.message


def test_ssh_key_for_another_namespace_is_not_accepted(tmp_path: Path, keys: Keys) -> None:
    repo = GitRepo(tmp_path / "repo")
    base = repo.commit(
        {".github/allowed_signers": f'alice@example.com namespaces="file" {keys.alice_ssh.public_line}\n'},
        "base",
    )
    repo.commit({"x": "1"}, "signed", ssh=keys.alice_ssh)
    [verdict] = verify(repo, base, tmp_path)
    assert not verdict.ok
    assert verdict.status in (sig.BAD_KEY, sig.UNKNOWN_KEY)


def test_the_title_says_why_unverified_commits_pass() -> None:
    from bot.domain.governance.signatures import CommitVerdict, signatures_summary

    def verdict(sha: str, status: str, required: bool) -> CommitVerdict:
        kind = "ssh" if status == "verified" else ""
        return CommitVerdict(sha, "s", "a@x", "a@x", kind, status, required)

    settings = {"trust": "github", "required": False, "web_flow": "allow"}
    title, _ = signatures_summary([verdict("a" * 40, "verified", True)], settings)
    assert title == "Signatures OK: 1 of 1 commit verified"
    title, _ = signatures_summary([verdict("b" * 40, "unsigned", False)], settings)
    assert title == "Signatures OK: 0 of 1 commit verified, 1 needs no signature here"
    title, _ = signatures_summary(
        [verdict("a" * 40, "verified", True), *(verdict(c * 40, "unsigned", False) for c in "bc")], settings
    )
    assert title == "Signatures OK: 1 of 3 commits verified, 2 need no signature here"
