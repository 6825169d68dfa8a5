"""Tests of the component image: its recipe replayed and compiled steps run in it."""
