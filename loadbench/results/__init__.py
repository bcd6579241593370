"""The run folder: creating it, writing its files, reading them back."""
