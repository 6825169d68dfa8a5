"""Small utilities: model signers and data splitters."""
