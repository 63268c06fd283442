"""FrugalThink: train reasoning language models with RL to reason efficiently (Arora & Zanette, 2025)."""

__version__ = "0.1.0"
