"""Cherry-pick, revert and merge on real bare repositories, without a work tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.git.rewrite import BOT_NAME, cherry_pick, cherry_pick_range, commit_info, merge, revert
from tests.support.gitrepo import GitRepo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    r = GitRepo(tmp_path / "fleet.git", bare=True)
    base = r.commit_on(
        "dev", {"clusters/a.yaml": "name: a\nsize: 1\n", "clusters/b.yaml": "name: b\n"}, "init"
    )
    r.git("update-ref", "refs/heads/staging", base)
    r.git("update-ref", "refs/heads/prod", base)
    # staging diverges on an unrelated file
    r.commit_on("staging", {"README.md": "staging notes\n"}, "staging only")
    return r


def test_cherry_pick_carries_exactly_the_change(repo: GitRepo) -> None:
    change = repo.commit_on(
        "dev", {"clusters/a.yaml": "name: a\nsize: 3\n", "clusters/c.yaml": "name: c\n"}, "Grow a"
    )
    result = cherry_pick(
        repo.path, change, "refs/heads/staging", trailer=f"(cherry picked from commit {change})"
    )
    assert result.ok and not result.conflicts and not result.empty
    assert result.sha is not None
    assert repo.read(result.sha, "clusters/a.yaml") == "name: a\nsize: 3\n"
    assert repo.read(result.sha, "clusters/c.yaml") == "name: c\n"
    assert repo.read(result.sha, "README.md") == "staging notes\n"  # staging's own file kept
    info = commit_info(repo.path, result.sha)
    assert info.parents == (repo.sha("staging"),)
    assert info.author_name == "Alice"
    assert info.author_date == commit_info(repo.path, change).author_date
    assert info.message.startswith("Grow a\n")
    assert f"(cherry picked from commit {change})" in info.message
    committer = repo.git("show", "-s", "--format=%cn", result.sha)
    assert committer == BOT_NAME


def test_cherry_pick_twice_gives_the_same_sha(repo: GitRepo) -> None:
    change = repo.commit_on("dev", {"clusters/a.yaml": "name: a\nsize: 2\n"}, "Resize")
    first = cherry_pick(repo.path, change, "refs/heads/staging")
    second = cherry_pick(repo.path, change, "refs/heads/staging")
    assert first.sha is not None and first.sha == second.sha


def test_cherry_pick_of_a_merge_commit_uses_first_parent(repo: GitRepo) -> None:
    repo.git("update-ref", "refs/heads/feature", repo.sha("dev"))
    repo.commit_on("feature", {"clusters/a.yaml": "name: a\nsize: 5\n"}, "step 1")
    repo.commit_on("feature", {"clusters/d.yaml": "name: d\n"}, "step 2")
    merged = repo.merge_pr("dev", "feature", "Add d, grow a", 12)
    result = cherry_pick(repo.path, merged, "refs/heads/staging")
    assert result.sha is not None
    assert repo.read(result.sha, "clusters/a.yaml") == "name: a\nsize: 5\n"
    assert repo.read(result.sha, "clusters/d.yaml") == "name: d\n"


def test_cherry_pick_reports_conflicting_paths(repo: GitRepo) -> None:
    repo.commit_on("staging", {"clusters/a.yaml": "name: a\nsize: 9\n"}, "hotfix on staging")
    change = repo.commit_on(
        "dev", {"clusters/a.yaml": "name: a\nsize: 2\n", "clusters/e.yaml": "e\n"}, "Resize a"
    )
    before = repo.sha("staging")
    result = cherry_pick(repo.path, change, "refs/heads/staging")
    assert not result.ok
    assert result.conflicts == ("clusters/a.yaml",)
    assert any("clusters/a.yaml" in m for m in result.messages)
    assert repo.sha("staging") == before  # nothing moved


def test_cherry_pick_of_a_change_already_there_is_empty(repo: GitRepo) -> None:
    change = repo.commit_on("dev", {"README.md": "staging notes\n"}, "same readme")
    result = cherry_pick(repo.path, change, "refs/heads/staging")
    assert result.ok and result.empty


def test_cherry_pick_range_stops_at_first_conflict(repo: GitRepo) -> None:
    c1 = repo.commit_on("dev", {"clusters/b.yaml": "name: b\nx: 1\n"}, "one")
    c2 = repo.commit_on("dev", {"README.md": "dev notes\n"}, "two")  # conflicts with staging's README
    ok = cherry_pick_range(repo.path, [c1], "refs/heads/staging")
    assert ok.sha is not None and repo.read(ok.sha, "clusters/b.yaml") == "name: b\nx: 1\n"
    bad = cherry_pick_range(repo.path, [c1, c2], "refs/heads/staging")
    assert bad.conflicts == ("README.md",)


def test_revert_undoes_the_change_on_a_later_head(repo: GitRepo) -> None:
    change = repo.commit_on("dev", {"clusters/a.yaml": "name: a\nsize: 7\n"}, "Grow a to 7")
    later = repo.commit_on("dev", {"clusters/b.yaml": "name: b\nlater: true\n"}, "later")
    result = revert(repo.path, change, "refs/heads/dev", reason="health turned red")
    assert result.sha is not None
    assert repo.read(result.sha, "clusters/a.yaml") == "name: a\nsize: 1\n"
    assert repo.read(result.sha, "clusters/b.yaml") == "name: b\nlater: true\n"
    info = commit_info(repo.path, result.sha)
    assert info.parents == (later,)
    assert info.subject == 'Revert "Grow a to 7"'
    assert f"This reverts commit {change}." in info.message and "health turned red" in info.message
    assert revert(repo.path, change, "refs/heads/dev", reason="health turned red").sha == result.sha


def test_revert_conflict_is_reported(repo: GitRepo) -> None:
    change = repo.commit_on("dev", {"clusters/a.yaml": "name: a\nsize: 7\n"}, "Grow a")
    repo.commit_on("dev", {"clusters/a.yaml": "name: a\nsize: 8\n"}, "Grow a more")
    result = revert(repo.path, change, "refs/heads/dev")
    assert result.conflicts == ("clusters/a.yaml",)


def test_merge_strategy_makes_a_two_parent_commit(repo: GitRepo) -> None:
    repo.commit_on("dev", {"clusters/a.yaml": "name: a\nsize: 4\n"}, "dev change")
    result = merge(repo.path, "refs/heads/dev", "refs/heads/staging", message="Promote dev to staging")
    assert result.sha is not None
    info = commit_info(repo.path, result.sha)
    assert info.parents == (repo.sha("staging"), repo.sha("dev"))
    assert repo.read(result.sha, "clusters/a.yaml") == "name: a\nsize: 4\n"
    assert repo.read(result.sha, "README.md") == "staging notes\n"
    again = merge(repo.path, "refs/heads/dev", "refs/heads/staging", message="Promote dev to staging")
    assert again.sha == result.sha


def test_merge_when_already_contained_is_empty(repo: GitRepo) -> None:
    result = merge(repo.path, "refs/heads/prod", "refs/heads/staging", message="noop")
    assert result.empty and result.sha == repo.sha("staging")


def test_merge_conflict_is_reported(repo: GitRepo) -> None:
    repo.commit_on("dev", {"README.md": "dev notes\n"}, "dev readme")
    result = merge(repo.path, "refs/heads/dev", "refs/heads/staging", message="m")
    assert result.conflicts == ("README.md",)
