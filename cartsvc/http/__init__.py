"""The HTTP surface: signatures, the three webhooks, health and metrics."""
