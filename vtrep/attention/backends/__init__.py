"""Backends that run an attention pattern; ``dense`` is the reference every fast backend is tested against."""
