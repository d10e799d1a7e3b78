"""Qt-free, torch-free vocabulary shared by every layer."""
