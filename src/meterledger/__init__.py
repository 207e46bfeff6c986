"""meterledger: from the smart meter to the bill."""

__version__ = "0.1.0"

__all__ = ["__version__"]
