"""Local runs: the kfp.local runner, its console, warm interpreters, the background worker."""
