"""The data plane: the transport-free predict path."""
