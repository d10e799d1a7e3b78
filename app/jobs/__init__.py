"""The GUI-thread job controller and the one inference worker thread."""
