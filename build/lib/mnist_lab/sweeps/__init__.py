"""Sweeps: the checks before launching, the run folders' names, the summary at the end."""
