"""Packaging: turning a fitted model into the files the server reads (compiled forms).

Imported by training, tests and benches only. The arrow goes one way: packaging imports the
serving modules of ``ml`` (the scorers it compiles into, the manifest), never the reverse.
"""
