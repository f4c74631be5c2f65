"""Atelier: a reproducible case study of ML personalization for an online fashion retailer."""

from atelier.core.spark import filter_known_warnings

# pandera imports pyspark.pandas whenever PySpark is installed, which warns about pandas 3 on every stage and in
# every report; that known warning (and only it, by its exact message) is silenced for the whole package.
filter_known_warnings()

__version__ = "0.1.0"
