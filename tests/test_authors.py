"""The one rule for "written by this App": login (case-insensitive) and account type Bot."""

from __future__ import annotations

from bot.domain.authors import by_bot, same_login
from bot.github.comments import by_bot as comment_by_bot

BOT = "gitops-bot[bot]"


def test_the_apps_login_in_any_case_with_type_bot_is_the_bot() -> None:
    assert by_bot({"user": {"login": "GitOps-Bot[bot]", "type": "Bot"}}, BOT)
    assert same_login("Alice", "alice")


def test_a_user_account_or_another_app_is_not_the_bot() -> None:
    assert not by_bot({"user": {"login": BOT, "type": "User"}}, BOT)  # the type is checked too
    assert not by_bot({"user": {"login": "other-app[bot]", "type": "Bot"}}, BOT)
    assert not by_bot({"user": None}, BOT)
    assert not by_bot({}, BOT)


def test_comments_use_the_same_rule_with_the_default_login() -> None:
    assert comment_by_bot({"user": {"login": "GITOPS-BOT[bot]", "type": "Bot"}}, None)
    assert not comment_by_bot({"user": {"login": BOT, "type": "User"}}, None)
