"""Who wrote something on GitHub: the one rule for "written by this App".

GitHub logins are case-insensitive. An App's issues, pull requests and comments come from the
account ``<slug>[bot]`` with type ``Bot``; a person cannot take a login ending in ``[bot]``,
and checking the type as well keeps a look-alike user account from passing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def same_login(a: str, b: str) -> bool:
    """Whether two GitHub logins name the same account (logins are case-insensitive)."""
    return a.casefold() == b.casefold()


def by_bot(item: Mapping[str, Any], bot_login: str) -> bool:
    """Whether an issue, pull request or comment was written by this App (login and type)."""
    user = item.get("user")
    if not isinstance(user, Mapping):
        return False
    return same_login(str(user.get("login") or ""), bot_login) and user.get("type") == "Bot"
