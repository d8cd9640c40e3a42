"""audiosr: neural audio super-resolution with PyTorch Lightning."""

__version__ = "0.1.0"
