"""gonggi gateway: verifies node packets, spools them durably and batches them upstream."""

__version__ = "0.1.0"
