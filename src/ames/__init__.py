"""AMES: Adaptive Multi-Expert System for monthly precipitation forecasts on mountain grids."""

__version__ = "0.1.0"
