"""The embedded world: a small trained text-to-image world that stands in for real models and data."""
