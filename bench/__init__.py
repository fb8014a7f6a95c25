"""clusterbench: a benchmark harness for unsupervised image clustering."""

__version__ = "0.1.0"
