"""The API as a Ray Serve application: ``python -m ray_serve`` (``make ray-run``).

Each replica is one process running the whole app (``api.main.create_app``) behind
``@serve.ingress``: its own data plane, lazy registry and trace writer, all replicas on one
PostgreSQL. Ray is an optional dependency (requirements-ray.txt): nothing in api/ imports it.
"""
