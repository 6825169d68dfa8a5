"""The KFP cluster: the API client, compilation, submitted runs and recurring runs."""
