from __future__ import annotations

from studio.accounts.selectors import team_list


def navigation(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"nav_teams": team_list(user=user)}
