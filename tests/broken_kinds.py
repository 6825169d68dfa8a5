"""A user's module that fails while it is imported, not with an ImportError."""

raise AttributeError("partially initialized module 'kfp.dsl' has no attribute 'Pipeline'")
