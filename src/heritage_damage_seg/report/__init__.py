"""Report: figures (PNG) and tables (HTML/CSV) of a run."""
