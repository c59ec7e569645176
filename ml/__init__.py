"""Model runtimes, feature code and training scripts. Never imports FastAPI."""
