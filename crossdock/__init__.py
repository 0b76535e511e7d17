"""Crossdock: governed workflow automation between ecommerce storefronts and ERPs."""

__version__ = "0.1.0"
