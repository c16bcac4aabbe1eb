"""Graphs Parley ships: the default assistant and its building blocks."""
