"""Trace database: SQLModel tables, engine, group-commit trace writer, migrations.

Never imports FastAPI.
"""
