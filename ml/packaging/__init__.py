"""Packaging: turning a fitted model into the files the server reads (compiled forms, ONNX
conversions, a user's model packaged by ``python -m registry add``).

Imported by training, ``registry add``, tests and benches only, never by the server. The arrow
goes one way: packaging imports the serving modules of ``ml`` (the scorers it compiles into,
the manifest, the runtimes it proves), never the reverse.
"""
