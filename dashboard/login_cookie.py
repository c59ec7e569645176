"""The login survives a browser reload: the API's token kept in a cookie of this site.

A reload starts a new Streamlit session, with an empty ``st.session_state``; the browser sends
the site's cookies with it (``st.context.cookies``). The cookie holds the short-lived JWT the
API issued, never the password, and lives no longer than the token (``Max-Age``); SameSite=
Strict keeps other sites from sending it, Secure keeps it off plain HTTP when the dashboard is
served over HTTPS. Streamlit cannot set an HttpOnly cookie, so the page's own scripts can read
it, as they can read the session itself.
"""

from __future__ import annotations

import base64
import json
import time

import streamlit as st

COOKIE = "futurisys_api_token"
_RESTORED = "login_cookie_restored"
_WRITTEN = "login_cookie_written"


def restore(token_key: str, username_key: str) -> None:
    """Once per session: the token of the cookie, if it has not expired, as the session's."""
    if st.session_state.get(_RESTORED):
        return
    st.session_state[_RESTORED] = True
    token = st.context.cookies.get(COOKIE)
    username = unexpired_subject(token) if isinstance(token, str) else None
    if isinstance(token, str) and username:
        st.session_state[token_key], st.session_state[username_key] = token, username
        st.session_state[_WRITTEN] = token


def follow(token: str | None) -> None:
    """Set the cookie to the session's token, or delete it once logged out."""
    if st.session_state.get(_WRITTEN) == token:
        return
    st.session_state[_WRITTEN] = token
    max_age = max(0, _expires_at(token) - int(time.time())) if token else 0
    cookie = json.dumps(f"{COOKIE}={token or ''}; Max-Age={max_age}; Path=/; SameSite=Strict")
    st.sidebar.html(
        "<script>document.cookie = "
        f"{cookie} + (location.protocol === 'https:' ? '; Secure' : '');</script>",
        unsafe_allow_javascript=True,
    )


def unexpired_subject(token: str) -> str | None:
    """The user a JWT names while it has not expired; None for anything else.

    Its signature is the API's to check, on every call: this only spares a call with a token
    already known to be dead.
    """
    claims = _claims(token)
    subject = claims.get("sub")
    if not isinstance(subject, str) or _expires_at(token) <= time.time():
        return None
    return subject


def _expires_at(token: str) -> int:
    expires = _claims(token).get("exp")
    return int(expires) if isinstance(expires, int | float) else 0


def _claims(token: str) -> dict[str, object]:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}
