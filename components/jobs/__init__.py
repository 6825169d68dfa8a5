"""Jobs: one class per component: read -> validate -> load -> compute -> write -> notify."""
