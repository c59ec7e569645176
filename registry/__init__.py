"""The model registry: manifests, store scanning, lazy loading, default and fallback, LRU.

Never imports FastAPI, torch or librosa (runtimes are imported when first loaded).
"""
