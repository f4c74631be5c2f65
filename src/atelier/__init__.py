"""Atelier: a reproducible case study of ML personalization for an online fashion retailer."""

__version__ = "0.1.0"
