"""curate: audit and clean facial-expression-recognition datasets."""
__version__ = "0.1.0"
