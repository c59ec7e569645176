"""The dashboard's entry point: ``streamlit run dashboard/app.py`` (``API_URL``: the API)."""

import sys
from pathlib import Path

import streamlit as st

# `streamlit run` puts only this folder on sys.path; the `dashboard` package needs its parent.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from dashboard import login_cookie  # noqa: E402 (needs the path set above)
from dashboard.ui import TOKEN_KEY, USERNAME_KEY, api_status_in_sidebar, token  # noqa: E402

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/monitoring:", default=True),
    st.Page("views/models.py", title="Models", icon=":material/inventory_2:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("views/predictions.py", title="Predictions", icon=":material/history:"),
    st.Page("views/drift.py", title="Drift", icon=":material/query_stats:"),
    st.Page("views/try_model.py", title="Try a model", icon=":material/science:"),
]

st.set_page_config(
    page_title="Futurisys ML Deploy", page_icon=":material/model_training:", layout="wide"
)
page = st.navigation(PAGES)
login_cookie.restore(TOKEN_KEY, USERNAME_KEY)
# The cookie follows the token before the page (a login reruns the script, a page may stop
# it) and after it (a logout or an expired token dropped in this run).
login_cookie.follow(token())
api_status_in_sidebar()
page.run()
login_cookie.follow(token())
