"""Jobs: one class per KFP component, each reading -> validating -> loading -> computing -> writing -> notifying."""
