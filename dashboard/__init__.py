"""The Streamlit dashboard: compare models, watch the service, analyse predictions, try a model.

It talks to the API only (``API_URL``), never to the database or the model files.
"""
